"""pytest-alembic set up for a Flask-Migrate project, following pytest-alembic's setup docs.

Copied by bench/run.py into `tests/` of a copy of the generated project, whose env.py gets the
one-line edit those docs ask for (use `config.attributes["connection"]` when it is given), so that
every test runs on its own temporary SQLite file and never on the app's configured database.
"""

import pytest
import sqlalchemy as sa
from benchapp import create_app
from pytest_alembic.config import Config


@pytest.fixture(scope="session", autouse=True)
def app_context(tmp_path_factory):
    # env.py reads the metadata (and the Migrate options) from current_app.
    unused = tmp_path_factory.mktemp("app") / "never-connected.sqlite"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{unused}"})
    with app.app_context():
        yield app


@pytest.fixture
def alembic_config():
    return Config(config_options={"file": "migrations/alembic.ini", "script_location": "migrations"})


@pytest.fixture
def alembic_engine(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'alembic.sqlite'}")
    yield engine
    engine.dispose()
