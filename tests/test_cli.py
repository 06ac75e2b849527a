"""The command line against a throwaway database of its own."""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from openpartner.accounts.models import ApiKey
from openpartner.accounts.service import hash_token
from openpartner.cli import main
from openpartner.db.engine import get_engine
from openpartner.settings import get_settings
from tests.conftest import create_test_database


@pytest.fixture
def cli_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url, drop = create_test_database()
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    get_engine.cache_clear()
    yield url
    get_engine().dispose()
    get_settings.cache_clear()
    get_engine.cache_clear()
    drop()  # type: ignore[operator]


def test_migrate_then_create_a_key(cli_database: str) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    result = runner.invoke(main, ["keys", "create", "--scope", "links:read", "--name", "ci"])
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert token.startswith("op_sk_")
    with get_engine().connect() as conn:
        scopes = conn.execute(
            sa.select(ApiKey.scopes).where(ApiKey.token_hash == hash_token(token))
        ).scalar_one()
    assert scopes == ["links:read"]


def test_replay_dry_run_from_the_command_line(cli_database: str) -> None:
    runner = CliRunner()
    assert runner.invoke(main, ["migrate"]).exit_code == 0
    from openpartner.db.session import transaction
    from tests.factories import make_program

    with transaction() as session:
        program_id = make_program(session).id
    result = runner.invoke(
        main, ["attribution", "replay", "--program", program_id, "--model", "linear", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("dry run: 0 events, 0 changed")
