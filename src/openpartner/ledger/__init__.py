"""The double-entry, append-only ledger of every movement of partner money."""
