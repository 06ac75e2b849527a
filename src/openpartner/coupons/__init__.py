"""Promotion codes owned by partners: a sale carrying one is attributed without a click."""
