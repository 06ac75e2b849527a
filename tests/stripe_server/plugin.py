"""Pytest fixtures for the local Stripe server (registered in ``tests/conftest.py``).

- ``stripe_server``: the running server, emptied before each test (one server per session).
- ``stripe_settings``: the test ``settings`` pointed at it (secret key, API base, webhook secret).
- ``stripe_api``: the product's own client (``openpartner.integrations.stripe.stripe_client``) built
  from ``stripe_settings`` — exactly what production code gets.

To point the app under test at it, override ``settings`` in a test module::

    @pytest.fixture
    def settings(settings: Settings, stripe_server: StripeServer) -> Settings:
        return stripe_server.configure(settings)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe as stripe_lib

from openpartner.integrations.stripe import stripe_client
from openpartner.settings import Settings
from tests.stripe_server.server import StripeServer


@pytest.fixture(scope="session")
def _stripe_server_session() -> Iterator[StripeServer]:
    with StripeServer() as server:
        yield server


@pytest.fixture
def stripe_server(_stripe_server_session: StripeServer) -> Iterator[StripeServer]:
    """The local Stripe server, empty at the start of the test."""
    _stripe_server_session.reset()
    yield _stripe_server_session
    _stripe_server_session.reset()  # ends responses a fault still withholds


@pytest.fixture
def stripe_settings(settings: Settings, stripe_server: StripeServer) -> Settings:
    """The test settings with Stripe pointed at the local server."""
    return stripe_server.configure(settings)


@pytest.fixture
def stripe_api(stripe_settings: Settings) -> stripe_lib.StripeClient:
    """The product's Stripe client, talking to the local server."""
    return stripe_client(stripe_settings)
