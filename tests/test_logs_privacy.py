"""No email, API key or token in a log line or an error response: a real ``openpartner api``
process, its access log and its tracebacks."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from openpartner.logs import REDACTED, redact, without_query
from tests.factories import make_program
from tests.router_support import (
    SECRET,
    RouterDatabase,
    free_port,
    router_database,
    wait_until,
)

ADMIN = "op_sk_admin_" + "x" * 24
EMAIL = "ada.lovelace@example.com"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /v1/partners?email=ada%40example.com", "GET /v1/partners?email=[redacted]"),
        ("user Ada.L+x@mail.example.co.uk signed in", "user [redacted] signed in"),
        ("Authorization: Bearer op_sk_abc123", "Authorization: [redacted] [redacted]"),
        ("{'x-api-key': 'op_pk_1a2b'}", "{'x-api-key': '[redacted]'}"),
        ("secret whsec_abc and op_sk_live_42", "secret [redacted] and [redacted]"),
        ("Key (email)=(a@b.io) already exists.", "Key (email)=([redacted]) already exists."),
        ("Stripe-Signature: t=1,v1=ab12", "Stripe-Signature: [redacted]"),
        ("nothing to hide in /r/abc?cref=clk_1", "nothing to hide in /r/abc?cref=clk_1"),
    ],
)
def test_redaction(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_access_lines_keep_the_path_only() -> None:
    assert without_query("/v1/partners?email=a%40b.io&limit=2") == f"/v1/partners?{REDACTED}"
    assert without_query("/v1/partners") == "/v1/partners"


@pytest.fixture
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


def start_api(url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "api.log"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET,
        "ADMIN_API_KEY": ADMIN,
        "LOG_LEVEL": "info",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "openpartner", "api", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(log.read_text())
        try:
            return httpx.get(base + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=60, what="api start")
    return process, base, log


def refuse_this_partner(db: RouterDatabase) -> None:
    """A database error on inserting a partner: its statement's parameters carry the email,
    and on PostgreSQL its message too."""
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            conn.execute(
                sa.text(
                    """CREATE FUNCTION refuse() RETURNS trigger AS $$
                    BEGIN RAISE EXCEPTION 'refused %', NEW.email; END $$ LANGUAGE plpgsql"""
                )
            )
            conn.execute(
                sa.text(
                    "CREATE TRIGGER refuse BEFORE INSERT ON partners"
                    " FOR EACH ROW EXECUTE FUNCTION refuse()"
                )
            )
        else:
            conn.execute(
                sa.text(
                    # SQLITE_TOOBIG: a DataError, which nothing handles (500); the email is
                    # in the statement's parameters only
                    "CREATE TRIGGER refuse BEFORE INSERT ON partners"
                    " BEGIN SELECT zeroblob(2000000000); END"
                )
            )


def test_no_email_or_key_in_the_logs_of_a_query_or_a_database_error(
    db: RouterDatabase, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    with Session(db.engine) as session, session.begin():
        program_id = make_program(session).id
    process, base, log = start_api(db.url, tmp_path / "data")
    try:
        with httpx.Client(base_url=base, headers={"X-API-Key": ADMIN}, timeout=10) as api:
            listed = api.get("/v1/partners", params={"email": EMAIL, "program_id": program_id})
            assert listed.status_code == 200, listed.text
            bearer = api.get(
                "/v1/partners",
                params={"email": EMAIL},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            assert bearer.status_code == 200
            refuse_this_partner(db)
            failed = api.post(
                "/v1/partners", json={"program_id": program_id, "name": "Ada", "email": EMAIL}
            )
            assert failed.status_code == 500  # unexpected: a traceback in the log
            assert EMAIL not in failed.text and ADMIN not in failed.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    text = log.read_text()
    assert "GET /v1/partners?[redacted]" in text  # the access log has the requests
    assert "POST /v1/partners" in text
    assert "Traceback" in text and "SQL parameters hidden" in text
    if db.engine.dialect.name == "postgresql":
        assert "refused [redacted]" in text
    for secret in (EMAIL, "ada.lovelace%40example.com", "lovelace", ADMIN, "op_sk_"):
        assert secret not in text, text
