from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from openpartner.db.migrate import drift


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    assert drift(engine) == []


def test_programs_from_before_versioning_get_a_first_config() -> None:
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from openpartner.attribution.configs import config_for
    from openpartner.db.engine import create_engine
    from openpartner.db.migrate import upgrade
    from tests.conftest import create_test_database

    url, drop = create_test_database()
    engine = create_engine(url)
    try:
        upgrade(engine, "0005")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO programs (id, name, currency, default_destination_url, "
                    "allowed_domains, allowed_origins, attribution_window_days, "
                    "attribution_model, cookie_lifetime_days, cookie_name, click_param, "
                    "velocity_limit_per_minute, archived, metadata, created_at, updated_at, "
                    "holding_days, auto_approve, payout_minimums, payout_schedule, "
                    "payout_provider) VALUES ('prg_01OLD', 'Old', 'USD', 'https://a.example', "
                    "'[]', '[]', 45, 'linear', 60, '_cref', 'cref', 20, false, '{}', "
                    ":now, :now, 0, false, '{}', 'manual', 'manual')"
                ),
                {"now": datetime.now(UTC)},
            )
        upgrade(engine)
        with sa.orm.Session(engine) as session:
            config = config_for(session, "prg_01OLD", datetime.now(UTC))
            assert config is not None
            assert (config.model, config.window_days, config.reason) == ("linear", 45, "created")
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def test_attribution_rows_survive_partitioning_and_back() -> None:
    """Migration 0009 (attributions partitioned by program on PostgreSQL) keeps every row, its
    ``seq`` sequence going on, both ways; 0010 puts each partner's amount on its first row."""
    import sqlalchemy as sa

    from openpartner.db.engine import create_engine
    from openpartner.db.migrate import upgrade
    from tests.conftest import create_test_database

    url, drop = create_test_database()
    engine = create_engine(url)
    row = (
        "INSERT INTO attributions (id, program_id, event_id, partner_id, touch_id, touch_kind,"
        " weight, amount, currency, model, params, engine_version, created_at) VALUES"
        " (:id, 'prg_1', 'evt_1', 'prt_1', 'clk_1', 'click', '1/1', 100, 'USD', 'last_click',"
        " '{}', '1', CURRENT_TIMESTAMP)"
    )
    rows = "SELECT seq, id, amount FROM attributions ORDER BY seq"
    try:
        upgrade(engine, "0008")
        with engine.begin() as conn:
            conn.execute(sa.text(row), {"id": "att_1"})
            conn.execute(sa.text(row), {"id": "att_2"})  # the same partner's second touch
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text(row), {"id": "att_3"})
            assert conn.execute(sa.text(rows)).all() == [
                (1, "att_1", 100), (2, "att_2", 100), (3, "att_3", 100)
            ]  # fmt: skip
            credits = "SELECT credit FROM attributions ORDER BY seq"
            assert conn.execute(sa.text(credits)).scalars().all() == [200, None, None]
        config = alembic_config(engine)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "0008")
        with engine.begin() as conn:
            conn.execute(sa.text(row), {"id": "att_4"})
            assert [r[0] for r in conn.execute(sa.text(rows))] == [1, 2, 3, 4]
        upgrade(engine)
        assert drift(engine) == []
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def alembic_config(engine: Engine) -> Config:
    from openpartner.db.migrate import alembic_config as config

    return config(engine.url.render_as_string(hide_password=False))


def test_rule_versions_get_their_programs_holding_period_and_pending_maturities_align() -> None:
    """Migration 0012: each event's pending commissions mature at its time plus the holding
    period of the rule version in force then (the program's when the migration ran); an
    approved commission keeps the maturity it was approved under."""
    from collections.abc import Mapping
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from openpartner.db.base import UTCDateTime
    from openpartner.db.engine import create_engine
    from openpartner.db.migrate import upgrade
    from tests.conftest import create_test_database

    url, drop = create_test_database()
    engine = create_engine(url)
    at = datetime(2025, 6, 2, 12, 30, 15, 123456, tzinfo=UTC)
    times = [sa.bindparam(n, type_=UTCDateTime()) for n in ("at", "matures")]
    program = (
        "INSERT INTO programs (id, name, currency, default_destination_url, allowed_domains,"
        " allowed_origins, attribution_window_days, attribution_model, cookie_lifetime_days,"
        " cookie_name, click_param, velocity_limit_per_minute, archived, metadata, created_at,"
        " updated_at, holding_days) VALUES ('prg_1', 'P', 'USD', 'https://a.example', '[]',"
        " '[]', 60, 'last_click', 60, '_cref', 'cref', 20, false, '{}', :at, :at, 7)"
    )
    partner = (
        "INSERT INTO partners (id, program_id, name, email, status, metadata, created_at,"
        " updated_at) VALUES (:id, 'prg_1', 'X', :id, 'active', '{}', :at, :at)"
    )
    event = (
        "INSERT INTO events (id, program_id, type, occurred_at, received_at, external_id,"
        " request_hash, source, metadata, response) VALUES ('evt_1', 'prg_1', 'sale', :at, :at,"
        " 'x1', 'h', 'api', '{}', '{}')"
    )
    version = (
        "INSERT INTO commission_rule_versions (id, program_id, effective_from, rules,"
        " created_by, created_at) VALUES ('rul_1', 'prg_1', :matures, '[]', 'key', :at)"
    )
    commission = (
        "INSERT INTO commissions (id, program_id, partner_id, event_id, event_type, amount,"
        " currency, base_amount, rule_version_id, rule, status, matures_at, created_at,"
        " updated_at) VALUES (:id, 'prg_1', :partner, 'evt_1', 'sale', 10, 'USD', 100, 'rul_1',"
        " '{}', :status, :matures, :at, :at)"
    )
    rows_before: list[tuple[str, Mapping[str, object]]] = [
        (program, {}),
        *((partner, {"id": f"ptn_{p}"}) for p in "abc"),
        (event, {}),
        (version, {"matures": at - timedelta(days=1)}),
        *(
            (commission, {"id": f"com_{p}", "partner": f"ptn_{p}", **more})
            for p, more in (
                ("a", {"status": "pending", "matures": at - timedelta(days=1)}),
                ("b", {"status": "held", "matures": at + timedelta(days=30)}),
                ("c", {"status": "approved", "matures": at + timedelta(days=30)}),
            )
        ),
    ]
    try:
        upgrade(engine, "0011")
        with engine.begin() as conn:
            for statement, values in rows_before:
                typed = [b for b in times if f":{b.key}" in statement]
                conn.execute(sa.text(statement).bindparams(*typed), {"at": at, **values})
        upgrade(engine)
        with engine.begin() as conn:
            assert conn.scalar(sa.text("SELECT holding_days FROM commission_rule_versions")) == 7
            rows = conn.execute(
                sa.text("SELECT id, matures_at FROM commissions ORDER BY id").columns(
                    sa.column("id"), sa.column("matures_at", UTCDateTime())
                )
            ).all()
        assert [tuple(r) for r in rows] == [
            ("com_a", at + timedelta(days=7)),
            ("com_b", at + timedelta(days=7)),
            ("com_c", at + timedelta(days=30)),
        ]
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]
