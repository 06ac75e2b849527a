"""Stripe: webhooks in (an event source) and Connect transfers out (payouts)."""
