"""Loading the app and its migrations: every form `flask --app` takes, and errors that say what to fix."""

import pytest
from conftest import Project


@pytest.mark.parametrize("app", ["sample_app", "sample_app:create_app()",
                                 "sample_app:create_app('testing')"])
def test_app_forms(project: Project, app: str) -> None:
    result = project.run(app=app)
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_flask_app_environment_variable(project: Project) -> None:
    result = project.run(app=None, env={"FLASK_APP": "sample_app:create_app('testing')"})
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_flaskenv_file(project: Project) -> None:
    project.write(".flaskenv", "FLASK_APP=sample_app:create_app('testing')\n")
    result = project.run(app=None)
    assert result.code == 0, result.output
    assert "no problems" in result.out


def test_bad_app_is_one_paragraph_and_traceback_only_with_verbose(project: Project) -> None:
    result = project.run(app="sample_ap")
    assert result.code == 2, result.output
    assert result.out == ""
    assert result.err == ("migcheck: error: Could not import 'sample_ap'. Point migcheck at your app with "
                          "--app, e.g. --app 'yourpkg:create_app()', or set FLASK_APP.\n")

    result = project.run("--verbose", app="sample_app:nope")
    assert result.code == 2, result.output
    assert "Traceback (most recent call last)" in result.err
    assert result.err.rstrip().splitlines()[-1] == (
        "migcheck: error: Failed to find attribute 'nope' in 'sample_app'. Point migcheck at your app "
        "with --app, e.g. --app 'yourpkg:create_app()', or set FLASK_APP.")


def test_no_app_given_or_found(project: Project) -> None:
    result = project.run(app=None)
    assert result.code == 2, result.output
    assert "migcheck: error: Could not locate a Flask application. Use the 'migcheck --app' option" \
        in result.err
    assert "Traceback" not in result.err


def test_import_error_in_the_app_names_the_users_line(project: Project) -> None:
    project.edit("sample_app/models/blog.py", "from ..extensions import db\n",
                 "from ..extensions import db\nfrom .markdown import render\n")
    line = project.line_of("sample_app/models/blog.py", "from .markdown")
    result = project.run()
    assert result.code == 2, result.output
    assert result.err == (
        "migcheck: error: Could not load 'sample_app:app': ModuleNotFoundError: No module named "
        f"'sample_app.models.markdown' at sample_app/models/blog.py:{line}. Fix the error in your code "
        "(run with --verbose for the full traceback).\n")


def test_error_in_the_factory_names_the_users_line(project: Project) -> None:
    result = project.run(app="sample_app:create_app('staging')")
    assert result.code == 2, result.output
    line = project.line_of("sample_app/__init__.py", "unknown config name")
    assert ("Could not load \"sample_app:create_app('staging')\": ValueError: unknown config name "
            f"'staging' at sample_app/__init__.py:{line}.") in result.err


def test_syntax_error_in_a_revision_file(project: Project) -> None:
    path = project.revision_file("428a6cc61e6a")
    project.edit(path, "def downgrade():", "def downgrade(:")
    result = project.run()
    assert result.code == 2, result.output
    assert (f"migcheck: error: Could not read the revision files in {path}:"
            f"{project.line_of(path, 'def downgrade(:')}: SyntaxError: ") in result.err
    assert "Fix that revision file" in result.err
    assert "Traceback" not in result.err


def test_missing_migrations_directory_and_directory_option(project: Project) -> None:
    (project.path / "migrations").rename(project.path / "db")
    result = project.run()
    assert result.code == 2, result.output
    assert (f"migcheck: error: No Flask-Migrate migrations directory at '{project.path / 'migrations'}' "
            "(from Migrate(directory=...)): it has no env.py. Run migcheck from your project's root, pass "
            "--directory, or create the directory with `flask db init`.") in result.err

    result = project.run("--directory", "db")
    assert result.code == 0, result.output
    assert "3 revisions" in result.out
