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
