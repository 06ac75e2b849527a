"""Adapters to outside services (Stripe, ...): the only code that talks to them."""
