"""Payout runs and providers (Stripe Connect, manual mass-pay)."""
