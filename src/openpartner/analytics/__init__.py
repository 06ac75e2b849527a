"""Analytics: program overview, leaderboard, model usage, touch mix, recent conversions,
per-partner analytics, and data-driven views (Markov, Shapley; analytics only, never payouts).
Read-only; see ``docs/analytics.md``."""
