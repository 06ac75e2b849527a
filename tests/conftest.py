"""Test harness: every test runs against a real database, inside a transaction rolled back after.

``OPENPARTNER_TEST_DB`` picks the database: ``sqlite`` (default) or ``postgresql`` (a throwaway
database created on ``TEST_POSTGRES_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432``,
dropped at the end). ``make test`` runs the suite once on each.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Tests get their own settings, never the developer's .env or environment.
_TMP = Path(tempfile.mkdtemp(prefix="openpartner-test-"))
for _name in ("DATABASE_URL", "ADMIN_API_KEY", "REDIS_URL"):
    os.environ.pop(_name, None)
os.environ["DATA_DIR"] = str(_TMP / "data")
os.environ["SECRET_KEY"] = "test-secret-current,test-secret-old"

import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy.engine import Engine  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from openpartner.api.app import create_app  # noqa: E402
from openpartner.core.time import clock  # noqa: E402
from openpartner.db import scratch  # noqa: E402
from openpartner.db.engine import create_engine  # noqa: E402
from openpartner.db.migrate import upgrade  # noqa: E402
from openpartner.settings import Settings  # noqa: E402
from tests.factories import make_key  # noqa: E402

ADMIN_TOKEN = "op_test_admin_" + secrets.token_hex(8)
# The local Stripe-compatible server: fixtures stripe_server, stripe_settings, stripe_api.
pytest_plugins = ["tests.stripe_server.plugin"]

PG_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def backend() -> str:
    return os.environ.get("OPENPARTNER_TEST_DB", "sqlite")


def create_test_database() -> tuple[str, object]:
    """A fresh, empty database URL for the chosen backend and a callable that drops it."""
    if backend() == "postgresql":
        url, name = scratch.create_database(PG_ADMIN_URL, "openpartner_test")
        return url, lambda: scratch.drop_database(PG_ADMIN_URL, name)
    path = _TMP / f"test-{secrets.token_hex(4)}.db"
    return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url, drop = create_test_database()
    engine = create_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    drop()  # type: ignore[operator]


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[sa.Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture
def sessions(connection: sa.Connection) -> sessionmaker[Session]:
    """Sessions joined to the test's outer transaction: their commits become savepoints."""
    return sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as s:
        yield s


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=_TMP / "data",
        database_url=database_url,
        admin_api_key=ADMIN_TOKEN,
        secret_key="test-secret-current,test-secret-old",
        max_body_bytes=64 * 1024,
    )


@pytest.fixture
def client(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    app = create_app(settings, sessions)
    with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as c:
        yield c


@pytest.fixture
def anon(client: TestClient) -> Iterator[TestClient]:
    """The same app, with no credentials."""
    with TestClient(client.app) as c:
        yield c


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    clock.unfreeze()


@pytest.fixture
def key_for(session: Session) -> object:
    """``key_for(*scopes, program_id=None, kind=..., is_admin=False)`` -> a token with exactly
    those scopes."""

    def make(
        *scopes: str, program_id: str | None = None, kind: str = "secret", is_admin: bool = False
    ) -> str:
        token = make_key(
            session, scopes=list(scopes), program_id=program_id, kind=kind, is_admin=is_admin
        )
        session.commit()
        return token

    return make
