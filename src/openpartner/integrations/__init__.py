"""Integrations with the systems around OpenPartner: merchant web frameworks, payment providers."""
