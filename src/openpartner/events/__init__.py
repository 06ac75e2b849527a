"""Events: leads, signups, sales, refunds and custom conversions, ingested idempotently."""
