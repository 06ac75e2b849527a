"""Identity stitching: an append-only log of edges between click ids, visitor ids, customer ids
and email hashes, resolved with guards when attribution needs a customer's touches."""
