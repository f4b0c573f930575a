"""Apps that touch their database while they load (tests/fixtures/startup_db): they connect before
`db.init_app`, create the database the way sqlalchemy-utils does, or read a settings row. The
config holds scratch URLs from the moment a URL is written to it, so each loads and is checked, on
SQLite and on both servers; anything that is not a scratch database is still refused.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Project
from servers import Server
from test_servers import assert_dropped, record_factory_app, run_on

APPS = {"connect_first": "notes/connect_first.py", "create_db": "notes/create_db.py",
        "settings": "notes/settings.py"}
MODELS = "notes/models.py"
REVISION = "b4c4ed3dd791"
CREATED_TABLES = ("upgrade: info: the app created tables in the default database while it loaded (e.g. "
                  "db.create_all() in the factory); they went to migcheck's scratch database, which was "
                  "emptied before the checks")


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[Project]:
    shutil.copytree(ROOT / "tests" / "fixtures" / "startup_db", tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    made = Project(tmp_path)
    yield made
    for name in ("configured.sqlite", "notes.sqlite", "instance"):
        assert not (tmp_path / name).exists(), f"migcheck created {name}"
    assert not any(made.tmp.iterdir()), "migcheck left its scratch area behind"


def _break(notes: Project) -> str:
    """A column the migrations lack, and a downgrade that leaves the tables; returns the revision file."""
    notes.edit(MODELS, "    body = db.Column(db.Text)\n",
               "    body = db.Column(db.Text)\n    pinned = db.Column(db.Boolean)\n")
    return notes.replace_downgrade(REVISION, "    pass\n")


def _assert_broken(notes: Project, revision: str, out: str) -> None:
    assert (f"{MODELS}:{notes.line_of(MODELS, 'pinned =')}: drift: column `note.pinned` is in the model "
            "but no migration creates it") in out
    line = notes.line_of(revision, "def downgrade")
    assert f"{revision}:{line}: roundtrip: downgrade of `{REVISION}` leaves table `note` behind" in out


@pytest.mark.parametrize("name", APPS)
def test_app_touching_its_database_while_loading_is_checked(notes: Project, name: str) -> None:
    result = notes.run(app=f"notes.{name}:create_app()")
    assert result.code == 0, result.output
    assert (CREATED_TABLES in result.out) == (name == "settings")
    assert f"no problems{' (1 info)' if name == 'settings' else ''} in " in result.out

    revision = _break(notes)
    result = notes.run(app=f"notes.{name}:create_app()")
    assert result.code == 1, result.output
    _assert_broken(notes, revision, result.out)


@pytest.mark.parametrize("name", APPS)
def test_app_touching_its_database_while_loading_on_servers(server: Server, notes: Project,
                                                            name: str) -> None:
    record_factory_app(notes, APPS[name])
    # The configured server does not exist: only the scratch databases may be reached.
    env = {"DATABASE_URL": server.with_(host="db.invalid", database="notes")}
    result = run_on(server, notes, app=f"notes.{name}:create_app()", env=env)
    assert result.code == 0, result.output
    assert (CREATED_TABLES in result.out) == (name == "settings")
    assert_dropped(server, notes)

    revision = _break(notes)
    result = run_on(server, notes, app=f"notes.{name}:create_app()", env=env)
    assert result.code == 1, result.output
    _assert_broken(notes, revision, result.out)
    assert_dropped(server, notes)


def test_config_written_every_way_holds_scratch_urls(notes: Project) -> None:
    """update, from_mapping, |=, from_pyfile, from_prefixed_env, a bind added to SQLALCHEMY_BINDS
    later, the app's own config class: every URL the app reads back is a scratch one."""
    real = f"sqlite:///{notes.configured_db}"
    notes.write("settings.cfg", f"SQLALCHEMY_DATABASE_URI = {real!r}\n")
    notes.write("notes/every_way.py", f'''
import sqlalchemy as sa
from flask import Config, Flask

from .models import db, migrate


class OwnConfig(Config):
    pass


class OwnFlask(Flask):
    config_class = OwnConfig


def create_app():
    app = OwnFlask(__name__)
    app.config.update(SQLALCHEMY_DATABASE_URI={real!r})
    urls = [app.config["SQLALCHEMY_DATABASE_URI"]]
    app.config.from_mapping({{"SQLALCHEMY_DATABASE_URI": {real!r}}})
    urls.append(app.config.get("SQLALCHEMY_DATABASE_URI"))
    app.config |= {{"SQLALCHEMY_DATABASE_URI": {real!r}}}
    urls.append(app.config["SQLALCHEMY_DATABASE_URI"])
    app.config.from_pyfile("../settings.cfg")
    urls.append(app.config["SQLALCHEMY_DATABASE_URI"])
    if hasattr(app.config, "from_prefixed_env"):  # Flask 2.1+
        app.config.from_prefixed_env()  # FLASK_SQLALCHEMY_BINDS__archive
    else:
        app.config["SQLALCHEMY_BINDS"] = {{"archive": {real!r}}}
    app.config.setdefault("SQLALCHEMY_BINDS", {{}})["cache"] = {real!r}
    app.config["SQLALCHEMY_BINDS"].update(reports={real!r})
    urls += app.config["SQLALCHEMY_BINDS"].values()
    assert len(urls) == 7 and isinstance(app.config, OwnConfig), (urls, type(app.config))
    for url in urls:
        sa.create_engine(url).connect().close()
    db.init_app(app)
    migrate.init_app(app, db)
    return app
''')
    result = notes.run("--select", "graph,upgrade", app="notes.every_way:create_app()",
                       env={"FLASK_SQLALCHEMY_BINDS__archive": f'"{real}"'})
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_connection_without_a_database_only_asks_about_scratch_databases(mysql: Server,
                                                                      notes: Project) -> None:
    """sqlalchemy-utils' check on MySQL connects without a database; nothing else may run there.
    (On PostgreSQL it asks the URL's own, scratch, database first: test_servers checks that a
    connection to `postgres` is refused.)"""
    query = "SELECT SCHEMA_NAME FROM INFORMATION_SCHEMA.SCHEMATA"
    notes.edit(APPS["create_db"], "    if not database_exists(url):\n",
               "    with sa.create_engine(set_url_database(url, None)).connect() as c:\n"
               f"        c.execute(sa.text({query!r})).all()\n"
               "    if not database_exists(url):\n")
    result = run_on(mysql, notes, app="notes.create_db:create_app()")
    assert result.code == 2, result.output
    line = notes.line_of(APPS["create_db"], "c.execute(")
    assert result.err == (
        f"migcheck: error: Refused {query!r} on a connection to the mysql server without a database: "
        "there migcheck lets an app only ask whether its (scratch) database exists or create it, as "
        "sqlalchemy-utils' database_exists / create_database do. "
        f"It happens at {APPS['create_db']}:{line}.\n")
