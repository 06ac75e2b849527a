"""Clicks: the raw, append-only record of every visit through a partner link."""
