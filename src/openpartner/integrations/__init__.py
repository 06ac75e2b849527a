"""Integrations with the outside world: Stripe, and web middleware for merchant sites."""
