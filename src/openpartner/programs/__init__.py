"""Programs: a merchant's partner program and its tracking and attribution settings."""
