"""Finding the app and the migrations where the project keeps them: migrations inside the package
(tests/fixtures/pkg_migrations), Migrate in a manage.py the app never imports (tests/fixtures/tutorial),
and a factory that needs arguments (sample_app)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest
from conftest import ROOT, Project

INIT = "sample_app/__init__.py"


def _copy(name: str, tmp_path: Path) -> Iterator[Project]:
    shutil.copytree(ROOT / "tests" / "fixtures" / name, tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    made = Project(tmp_path)
    yield made
    for left in ("configured.sqlite", "blog.sqlite", "tutorial.sqlite", "instance"):
        assert not (tmp_path / left).exists(), f"migcheck created {left}"
    assert not any(made.tmp.iterdir()), "migcheck left its scratch area behind"


@pytest.fixture
def blog(tmp_path: Path) -> Iterator[Project]:
    yield from _copy("pkg_migrations", tmp_path)


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[Project]:
    yield from _copy("tutorial", tmp_path)


def test_migrations_inside_the_package_are_found(blog: Project) -> None:
    result = blog.run(app="blog:create_app()")
    assert result.code == 0, result.output
    # The app runs flask_migrate.upgrade(directory=...) when it starts: in the scratch database.
    assert "upgrade: info: the app created tables in the default database while it loaded" in result.out
    assert result.out.rstrip().endswith(
        "(blog, 1 revision, checks: graph, upgrade, drift, imports, roundtrip, safety, data; migrations "
        "found in blog/migrations ('migrations' has no env.py))")
    # The app's upgrade configured alembic's logging: its own steps show, not those of the checks.
    assert result.err.count("Running upgrade") == 1, result.err

    blog.edit("blog/models.py", "    published = db.Column(db.Boolean, nullable=False, default=False)\n",
              "    published = db.Column(db.Boolean, nullable=False, default=False)\n"
              "    slug = db.Column(db.String(200))\n")
    [revision] = (blog.path / "blog" / "migrations" / "versions").glob("*.py")
    revision_path = str(revision.relative_to(blog.path))
    blog.write(revision_path, blog.read(revision_path).replace(
        "    op.drop_table('post')", "    pass"))
    result = blog.run("--no-cache", app="blog:create_app()", env={"BLOG_UPGRADE_ON_START": "0"})
    assert result.code == 1, result.output
    assert (f"blog/models.py:{blog.line_of('blog/models.py', 'slug =')}: drift: column `post.slug` is in "
            "the model but no migration creates it") in result.out
    assert (f"{revision_path}:{blog.line_of(revision_path, 'def downgrade')}: roundtrip: downgrade of "
            "`88d5b56df1b7` leaves table `post` behind") in result.out


def test_several_migrations_directories_are_listed(blog: Project) -> None:
    blog.write("tools/migrations/env.py", "")
    result = blog.run(app="blog:create_app()", env={"BLOG_UPGRADE_ON_START": "0"})
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: No Flask-Migrate migrations directory at 'migrations' (from "
        f"Migrate(directory=...), relative to {blog.path}): it has no env.py, and the project has several "
        "that do: blog/migrations, tools/migrations. Say which one with --directory, e.g. "
        "--directory blog/migrations.\n")

    result = blog.run("--directory", "blog/migrations", app="blog:create_app()")
    assert result.code == 0, result.output
    assert "migrations found" not in result.out


def test_tutorial_layout_with_the_app_given_says_to_use_manage(tutorial: Project) -> None:
    for app in ("app:app", "app"):
        result = tutorial.run(app=app)
        assert result.code == 2, result.output
        assert result.err == (
            "migcheck: error: The app 'app' does not use Flask-Migrate: no Migrate(app, db) was registered "
            f"while it loaded. manage.py:{tutorial.line_of('manage.py', 'Migrate(app')} calls Migrate(...) "
            "but the app does not import it: point migcheck at that module, e.g. --app manage:app.\n")

    result = tutorial.run(app="manage:app")
    assert result.code == 0, result.output
    assert "app loaded from" not in result.out


def test_tutorial_layout_without_app_loads_manage(tutorial: Project) -> None:
    result = tutorial.run(app=None)
    assert result.code == 0, result.output
    *notes, summary = result.out.splitlines()
    assert [note.split(":")[0] for note in notes] == ["safety, data"]  # and no findings
    assert summary.startswith("migcheck: no problems in ")
    assert summary.endswith(
        "(app, 1 revision, checks: graph, upgrade, drift, imports, roundtrip, safety, data; app loaded "
        "from manage.py, which registers Migrate (--app manage:app))")

    tutorial.edit("models.py", "    email = db.Column(db.String(120), nullable=False)\n",
                  "    email = db.Column(db.String(120), nullable=False)\n    bio = db.Column(db.Text)\n")
    result = tutorial.run(app=None)
    assert result.code == 1, result.output
    assert (f"models.py:{tutorial.line_of('models.py', 'bio =')}: drift: column `user.bio` is in the model "
            "but no migration creates it") in result.out


def test_manage_module_that_does_not_load_says_so(tutorial: Project) -> None:
    tutorial.edit("manage.py", "from app import app\n",
                  "from app import app\nfrom flask_script import Manager\n")
    result = tutorial.run(app=None)
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: The app 'app' does not use Flask-Migrate; manage.py:"
        f"{tutorial.line_of('manage.py', 'Migrate(app')} calls Migrate(...), but loading it failed: Could "
        "not load 'manage:app': ModuleNotFoundError: No module named 'flask_script' at manage.py:"
        f"{tutorial.line_of('manage.py', 'flask_script')}. Fix the error in your code (run with --verbose "
        "for the full traceback).\n")


def test_several_modules_registering_migrate_are_listed(tutorial: Project) -> None:
    tutorial.write("cli.py", "import flask_migrate\nfrom app import app\nfrom exts import db\n\n"
                             "flask_migrate.Migrate(app=app, db=db)\n")
    result = tutorial.run(app=None)
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: The app 'app' does not use Flask-Migrate: no Migrate(app, db) was registered "
        "while it loaded. Several modules the app does not import call Migrate(...); point migcheck at the "
        "one that sets up this app: --app cli:app (cli.py:5), --app manage:app "
        f"(manage.py:{tutorial.line_of('manage.py', 'Migrate(app')}).\n")


def _factory_with_required_argument(project: Project) -> None:
    project.edit(INIT, "(config: str | type[Config] | Mapping[str, Any] | None = None) -> Flask:",
                 "(config: str) -> Flask:")
    project.edit(INIT, "\n\napp = create_app()\n", "\n")


@pytest.mark.skipif(metadata.version("flask").startswith("1."),
                    reason="Flask 1.x passes its ScriptInfo to a factory that takes one argument, so "
                           "`flask` (and migcheck, which loads apps as it does) calls it without complaint")
@pytest.mark.parametrize("app", ["sample_app:create_app", "sample_app:create_app()", "sample_app"])
def test_factory_that_needs_arguments_names_them(project: Project, app: str) -> None:
    _factory_with_required_argument(project)
    result = project.run(app=app)
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: The factory 'create_app' in module 'sample_app' needs an argument that --app does "
        "not give: config. Give it in --app, e.g. --app \"sample_app:create_app('testing')\" (config is "
        "looked up in CONFIGS, which has 'default', 'development', 'testing', 'production').\n")

    result = project.run(app="sample_app:create_app('testing')")
    assert result.code == 0, result.output


def test_factory_argument_without_a_known_value(project: Project) -> None:
    _factory_with_required_argument(project)
    project.edit(INIT, "def create_app(config: str) -> Flask:",
                 "def create_app(config: str, *, tenant: str) -> Flask:")
    result = project.run(app="sample_app:create_app('testing')")
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: The factory 'create_app' in module 'sample_app' needs an argument that --app does "
        "not give: tenant. Give it in --app, e.g. --app \"sample_app:create_app('testing', tenant=...)\", "
        "with a value for tenant in place of ....\n")


def test_json_report_says_what_was_found(tutorial: Project) -> None:
    result = tutorial.run("--format", "json", app=None)
    assert result.code == 0, result.output
    assert json.loads(result.out)["found"] == [
        "app loaded from manage.py, which registers Migrate (--app manage:app)"]


def test_factory_flask_cannot_call_and_migrate_in_its_own_module(tutorial: Project) -> None:
    """Flask's guess without --app (app.py) holds a factory that needs its config name; the one
    module that calls Migrate(...) makes the app: that is what to load (as in the Flasky book app)."""
    tutorial.write("app.py", '''import config
from exts import db
from flask import Flask


def create_app(config_name):
    app = Flask(__name__)
    app.config.from_object(config)
    db.init_app(app)
    import models  # noqa: F401
    return app
''')
    tutorial.write("manage.py", '''from app import create_app
from exts import db
from flask_migrate import Migrate

app = create_app("default")
migrate = Migrate(app, db)
''')
    result = tutorial.run(app=None)
    assert result.code == 0, result.output
    assert result.out.rstrip().endswith(
        "app loaded from manage.py, which registers Migrate (--app manage:app))")
