"""The click router: resolves a partner link from an in-process cache, answers the redirect, and
records the click off the request path (buffered batches, an on-disk spool when the database is
down). See docs/tracking.md."""
