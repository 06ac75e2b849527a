"""Database layer: engine, session (the edge owns the transaction), declarative base, migrations."""
