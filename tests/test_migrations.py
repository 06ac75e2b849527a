from sqlalchemy.engine import Engine

from openpartner.db.migrate import drift


def test_models_and_migrations_do_not_drift(engine: Engine) -> None:
    assert drift(engine) == []
