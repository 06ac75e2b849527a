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
