"""The HTTP API: app factory, error rendering, request plumbing shared by every domain's routes."""
