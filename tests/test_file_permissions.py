"""What OpenPartner writes to disk is its owner's alone: folders 0700, files 0600, whatever the
umask would let through (here: none, the most permissive)."""

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from openpartner.core.files import open_private, private_dir
from openpartner.db.engine import create_engine
from openpartner.router.spool import Spool
from openpartner.secrets import server_secrets
from openpartner.settings import Settings
from tests.test_router_spool import records


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def open_umask() -> Iterator[None]:
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_sqlite_database_and_its_wal_and_shm_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "openpartner.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (x TEXT)"))
            conn.execute(sa.text("INSERT INTO t VALUES ('a')"))
        with engine.connect() as conn:  # WAL mode: the -wal and -shm files exist while open
            assert conn.scalar(sa.text("SELECT x FROM t")) == "a"
            files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
            assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        engine.dispose()
    assert mode(tmp_path / "data") == mode(tmp_path / "data" / "nested") == 0o700


def test_generated_secret_key_and_data_dir_are_owner_only(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", secret_key=None)
    [secret] = server_secrets(settings)
    assert len(secret) > 30
    assert mode(tmp_path / "data") == 0o700
    assert mode(tmp_path / "data" / "secret_key") == 0o600


def test_click_spool_folder_and_segments_are_owner_only(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "data" / "spool", 10 * 1024 * 1024)
    assert spool.append(records(None, 3))
    [active] = list(spool.directory.iterdir())
    assert active.suffix == ".open" and mode(active) == 0o600
    spool.close_active()
    [closed] = list(spool.directory.iterdir())
    assert closed.suffix == ".jsonl" and mode(closed) == 0o600
    assert mode(spool.directory) == mode(tmp_path / "data") == 0o700


def test_an_existing_folder_keeps_its_mode_and_new_files_in_it_are_owner_only(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    assert private_dir(shared) == shared and mode(shared) == 0o755
    with open_private(shared / "rejected.ndjson") as handle:
        handle.write("{}\n")
    assert mode(shared / "rejected.ndjson") == 0o600
