"""Accounts and access: API keys (secret and publishable), scopes, the request principal."""
