"""Jobs in the database (a transactional outbox) and the worker that runs them."""
