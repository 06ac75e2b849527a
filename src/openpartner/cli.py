"""The `openpartner` command: `up` (everything, embedded default), `api`, `router`, `migrate`,
`worker`, `keys`, `payouts`, `ledger`, `attribution`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import click

from openpartner.settings import get_settings


@click.group()
@click.version_option(package_name="openpartner")
def main() -> None:
    """OpenPartner: partner attribution and payouts."""


def prepare() -> None:
    """Make the embedded default ready: data folder, server secret, schema, first admin key."""
    from openpartner.accounts.service import ensure_bootstrap_key
    from openpartner.core.files import private_dir
    from openpartner.db.engine import get_engine
    from openpartner.db.migrate import upgrade
    from openpartner.db.session import transaction
    from openpartner.secrets import server_secrets

    settings = get_settings()
    private_dir(settings.data_dir)
    server_secrets(settings)
    upgrade(get_engine())
    if settings.admin_api_key is None:
        with transaction() as session:
            token = ensure_bootstrap_key(session)
        if token:
            click.secho(
                "\nFirst start: an admin API key was created. It is shown only once:", bold=True
            )
            click.secho(f"\n    {token}\n", fg="green", bold=True)
            click.echo("Store it now (e.g. export OP_KEY=...); only its hash is kept.\n")


@main.command()
def migrate() -> None:
    """Apply database migrations (DATABASE_URL, default: the SQLite file in DATA_DIR)."""
    from openpartner.db.engine import get_engine
    from openpartner.db.migrate import upgrade

    upgrade(get_engine())
    click.echo("database is up to date")


@main.command()
@click.option("--host", default=None, help="Bind address (API_HOST).")
@click.option("--port", default=None, type=int, help="Port (API_PORT).")
@click.option("--workers", default=None, type=int, help="Worker processes (API_WORKERS).")
def api(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from openpartner.logs import api_logging_config

    settings = get_settings()
    uvicorn.run(
        "openpartner.api.app:served_app",
        factory=True,
        host=host or settings.api_host,
        port=port or settings.api_port,
        workers=workers or settings.api_workers,
        log_level=settings.log_level,
        log_config=api_logging_config(settings.log_level),
        proxy_headers=False,
    )


@main.command()
@click.option("--host", default=None, help="Bind address (ROUTER_HOST).")
@click.option("--port", default=None, type=int, help="Port (ROUTER_PORT).")
@click.option("--workers", default=None, type=int, help="Worker processes (ROUTER_WORKERS).")
def router(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the click router (partner links)."""
    from openpartner.router.server import serve

    settings = get_settings()
    serve(
        settings,
        host=host or settings.router_host,
        port=port or settings.router_port,
        workers=workers or settings.router_workers,
    )


# Each entry is one long-running process `up` supervises; later parts add theirs here.
UP_PROCESSES: list[list[str]] = [["api"], ["router"], ["worker"]]


@main.command()
@click.option("--once", is_flag=True, help="Run the jobs that are due, then exit.")
@click.option("--poll", default=0.5, show_default=True, help="Seconds between polls when idle.")
def worker(once: bool, poll: float) -> None:
    """Run jobs from the database queue (Stripe events, payouts, auto-approval, ...)."""
    import logging.config

    from openpartner.db.session import session_factory
    from openpartner.logs import worker_logging_config
    from openpartner.worker.queue import run_once, run_until_idle

    logging.config.dictConfig(worker_logging_config(get_settings().log_level))
    sessions = session_factory()
    interval = get_settings().scheduler_interval_seconds
    if once:
        _schedule()
        click.echo(f"ran {run_until_idle(sessions)} jobs")
        return
    stopping = False
    next_tick = 0.0

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping:
        if time.monotonic() >= next_tick:
            _schedule()
            next_tick = time.monotonic() + interval
        if not run_once(sessions):
            time.sleep(poll)


def _schedule() -> None:
    """Enqueue scheduled work that is due (payout runs, auto-approval)."""
    from openpartner.db.session import transaction
    from openpartner.payouts.schedule import tick

    with transaction() as session:
        tick(session)


@main.command()
def up() -> None:
    """Start everything on this machine: migrate, then run every process until interrupted."""
    prepare()
    settings = get_settings()
    children = [
        subprocess.Popen([sys.executable, "-m", "openpartner", *args], env=os.environ.copy())  # noqa: S603
        for args in UP_PROCESSES
    ]
    click.echo(f"OpenPartner API on http://{settings.api_host}:{settings.api_port} (docs at /docs)")
    click.echo(f"Click router on http://{settings.router_host}:{settings.router_port}/<link-key>")

    def stop(*_: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        stop()
        for child in children:
            child.wait()
    sys.exit(max((child.returncode or 0) for child in children))


@main.group()
def keys() -> None:
    """Manage API keys from the command line."""


@keys.command("create")
@click.option("--kind", type=click.Choice(["secret", "publishable"]), default="secret")
@click.option("--scope", "scopes", multiple=True, help="Repeat for several scopes.")
@click.option("--admin", is_flag=True, help="Full access.")
@click.option("--program", "program_id", default=None)
@click.option("--name", default="")
def keys_create(
    kind: str, scopes: tuple[str, ...], admin: bool, program_id: str | None, name: str
) -> None:
    """Create an API key and print it once."""
    from openpartner.accounts.service import create_key
    from openpartner.db.session import transaction

    with transaction() as session:
        created = create_key(
            session,
            kind=kind,
            scopes=list(scopes),
            name=name,
            is_admin=admin,
            program_id=program_id,
        )
        token = created.token
    click.echo(token)


@main.group()
def payouts() -> None:
    """Payout runs and manual payouts."""


@payouts.command("run")
@click.option("--program", "program_id", default=None, help="Default: every active program.")
def payouts_run(program_id: str | None) -> None:
    """Pay approved balances at or above each program's minimum, with its provider."""
    import sqlalchemy as sa

    from openpartner.db.session import transaction
    from openpartner.payouts.service import run_payouts
    from openpartner.programs.models import Program

    with transaction() as session:
        stmt = sa.select(Program).where(Program.archived.is_(False)).order_by(Program.id)
        if program_id:
            stmt = sa.select(Program).where(Program.id == program_id)
        programs = session.scalars(stmt).all()
        if not programs:
            raise click.ClickException(f"no such program: {program_id}")
        for program in programs:
            run = run_payouts(session, program, "cli")
            made, carried = run.summary["payouts"], run.summary["carried"]
            click.echo(f"{program.id}: run {run.id}, {len(made)} payouts, {len(carried)} carried")
            for p in made:
                click.echo(f"  {p['payout_id']} {p['partner_id']} {p['amount']} {p['currency']}")
            for c in carried:
                click.echo(
                    f"  carried {c['partner_id']} {c['amount']} {c['currency']}: {c['reason']}"
                )


@payouts.command("export")
@click.option("--program", "program_id", required=True)
@click.option("--run", "run_id", default=None)
def payouts_export(program_id: str, run_id: str | None) -> None:
    """Print pending manual payouts as CSV for a mass-pay tool."""
    from openpartner.db.session import transaction
    from openpartner.payouts.export import manual_payouts_csv

    with transaction() as session:
        click.echo(manual_payouts_csv(session, program_id, run_id=run_id), nl=False)


@payouts.command("mark-paid")
@click.argument("payout_ids", nargs=-1, required=True)
@click.option("--reference", default=None, help="The mass-pay provider's reference.")
def payouts_mark_paid(payout_ids: tuple[str, ...], reference: str | None) -> None:
    """Mark manual payouts as sent."""
    from openpartner.accounts.scopes import Principal
    from openpartner.db.session import transaction
    from openpartner.payouts.service import mark_paid_in_bulk

    cli = Principal(key_id="cli", kind="secret", is_admin=True)
    with transaction() as session:
        result = mark_paid_in_bulk(session, cli, list(payout_ids), reference)
    for item in result["results"]:
        click.echo(f"{item['id']}: {item['result']} {item.get('code') or item.get('status')}")
    if result["refused"]:
        sys.exit(1)


@main.group()
def ledger() -> None:
    """The double-entry ledger."""


@ledger.command("check")
def ledger_check() -> None:
    """Prove the books balance and match commissions, adjustments and payouts."""
    from openpartner.db.session import transaction
    from openpartner.ledger.check import check_books

    with transaction() as session:
        report = check_books(session)
    click.echo(
        f"{report.transactions} transactions, {report.commissions} commissions, "
        f"{report.adjustments} adjustments, {report.payouts} payouts"
    )
    for problem in report.problems:
        click.echo(f"{problem.code}: {problem.detail}", err=True)
    if not report.ok:
        sys.exit(1)
    click.echo("the books balance")


@main.group()
def attribution() -> None:
    """Attribution tools."""


@attribution.command("replay")
@click.option("--program", "program_id", required=True, help="Program id (prg_...).")
@click.option("--model", required=True, help="last_click, first_click, linear, partner_equal, ...")
@click.option("--params", default="{}", help='Model parameters as JSON, e.g. {"first": 30}.')
@click.option("--window", "window_days", type=click.IntRange(1, 365), default=None)
@click.option("--since", type=click.DateTime(), default=None, help="UTC date/time to start from.")
@click.option("--dry-run", is_flag=True, help="Report the per-partner difference, write nothing.")
def attribution_replay(
    program_id: str,
    model: str,
    params: str,
    window_days: int | None,
    since: datetime | None,
    dry_run: bool,
) -> None:
    """Re-derive a program's history under another model or window."""
    import json

    from openpartner.attribution.replay import replay
    from openpartner.db.session import transaction

    with transaction() as session:
        report = replay(
            session,
            program_id,
            model=model,
            params=json.loads(params),
            window_days=window_days,
            since=since.replace(tzinfo=UTC) if since else None,
            dry_run=dry_run,
        )
    out = report.as_dict()
    click.echo(
        f"{'dry run' if dry_run else 'applied'}: {out['events']} events, "
        f"{out['changed_events']} changed, {out['seconds']} s, model {out['model']}, "
        f"window {out['window_days']} days"
        + (f", config {out['config_version']}" if out["config_version"] else "")
    )
    if out["steps"]:
        click.echo("steps: " + ", ".join(f"{k} {v} s" for k, v in out["steps"].items()))
    click.echo(
        f"{'partner':<32} {'currency':<8} {'current':>14} {'replayed':>14} {'difference':>14}"
    )
    for row in out["partners"]:
        click.echo(
            f"{row['partner_id']:<32} {row['currency'] or '-':<8} {row['current']:>14} "
            f"{row['replayed']:>14} {row['difference']:>14}"
        )
