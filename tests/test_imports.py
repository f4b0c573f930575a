"""The imports check: models and tables in the source that the app never registers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import flask_migrate
import pytest
import sqlalchemy.orm
from conftest import ROOT, Project

# SQLAlchemy 2.0's typed declarative base, which Flask-SQLAlchemy 3.1 takes as `model_class`.
HAS_DECLARATIVE_BASE = hasattr(sqlalchemy.orm, "DeclarativeBase")

AUDIT = '''\
from ..extensions import db


class AuditLog(db.Model):
    __tablename__ = "audit_log"

    id = db.Column(db.Integer, primary_key=True)
    action = db.Column(db.String(50), nullable=False)
'''

ASSOCIATION = '''\
from ..extensions import db

post_watchers = db.Table(
    "post_watchers",
    db.Column("post_id", db.Integer, db.ForeignKey("post.id"), primary_key=True),
    db.Column("user_id", db.Integer, db.ForeignKey("user.id"), primary_key=True),
)
'''

MODELS_INIT = "sample_app/models/__init__.py"
NOT_IMPORTED = ("which the app does not import when it loads, so autogenerate cannot see it; no "
                "migration creates the table either")


def audit_fix(statement: str = "from .audit import AuditLog") -> str:
    return (f"fix: import `sample_app.models.audit` in `{MODELS_INIT}` next to the import of the app's "
            f"other models at line 3 (e.g. `{statement}`); then `flask db migrate -m \"create audit_log\"` "
            "will generate the table")


def test_new_module_nothing_imports(project: Project) -> None:
    project.write("sample_app/models/audit.py", AUDIT)
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of("sample_app/models/audit.py", "class AuditLog")
    assert (f"sample_app/models/audit.py:{line}: imports: model `AuditLog` (table `audit_log`) is "
            f"defined in `sample_app.models.audit`, {NOT_IMPORTED}") in result.out
    assert audit_fix() in result.out
    assert "1 error" in result.out
    assert "drift:" not in result.out  # autogenerate sees nothing, exactly the trap


@pytest.mark.parametrize("where", ["view", "cli"])
def test_model_imported_only_inside_a_function(project: Project, where: str) -> None:
    project.write("sample_app/models/audit.py", AUDIT)
    if where == "view":
        relpath = "sample_app/views.py"
        project.append(relpath, '\n\n@bp.route("/audit", methods=["POST"])\ndef audit() -> Response:\n'
                                "    from .models.audit import AuditLog\n\n"
                                "    return jsonify(table=AuditLog.__tablename__)\n")
    else:
        relpath = "sample_app/__init__.py"
        project.edit(relpath, "    app.register_blueprint(bp)\n",
                     "    app.register_blueprint(bp)\n\n    @app.cli.command()\n    def audit() -> None:\n"
                     "        from sample_app.models.audit import AuditLog\n\n        print(AuditLog)\n")
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of(relpath, "import AuditLog")
    assert (f"sample_app/models/audit.py:4: imports: model `AuditLog` (table `audit_log`) is defined in "
            f"`sample_app.models.audit`, which the app does not import when it loads, so autogenerate "
            f"cannot see it (it is imported only inside a function: {relpath}:{line})") in result.out
    assert audit_fix() in result.out


def test_module_in_subpackage_whose_init_does_not_import_it(project: Project) -> None:
    # Move User into a sub-package that imports it; a second model there is forgotten.
    user = project.read("sample_app/models/user.py").replace("from ..extensions", "from ...extensions")
    project.write("sample_app/models/accounts/user.py", user)
    (project.path / "sample_app/models/user.py").unlink()
    project.write("sample_app/models/accounts/__init__.py", "from .user import User\n")
    project.edit(MODELS_INIT, "from .user import User", "from .accounts import User")
    project.write("sample_app/models/accounts/profile.py", AUDIT.replace("from ..", "from ...")
                  .replace("AuditLog", "Profile").replace("audit_log", "profile"))
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of("sample_app/models/accounts/profile.py", "class Profile")
    assert (f"sample_app/models/accounts/profile.py:{line}: imports: model `Profile` (table `profile`) "
            f"is defined in `sample_app.models.accounts.profile`, {NOT_IMPORTED}") in result.out
    assert ("fix: import `sample_app.models.accounts.profile` in `sample_app/models/accounts/__init__.py` "
            "next to the import of the app's other models at line 1 (e.g. `from .profile import Profile`)"
            ) in result.out
    assert result.out.count("imports:") == 1 and "drift:" not in result.out


def test_association_table_in_unimported_module(project: Project) -> None:
    project.write("sample_app/models/watchers.py", ASSOCIATION)
    result = project.run()
    assert result.code == 1, result.output
    line = project.line_of("sample_app/models/watchers.py", "post_watchers = db.Table(")
    assert (f"sample_app/models/watchers.py:{line}: imports: table `post_watchers` is defined in "
            f"`sample_app.models.watchers`, {NOT_IMPORTED}") in result.out
    assert (f"fix: import `sample_app.models.watchers` in `{MODELS_INIT}` next to the import of the app's "
            "other models at line 3 (e.g. `from .watchers import post_watchers`)") in result.out


@pytest.mark.skipif(not HAS_DECLARATIVE_BASE, reason="DeclarativeBase and SQLAlchemy(model_class=Base) "
                    "are new in SQLAlchemy 2.0 and Flask-SQLAlchemy 3.1")
def test_custom_declarative_base_of_the_apps_db(project: Project) -> None:
    project.edit("sample_app/extensions.py",
                 "db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))",
                 "class Base(DeclarativeBase):\n"
                 "    metadata = MetaData(naming_convention=NAMING_CONVENTION)\n\n\n"
                 "db = SQLAlchemy(model_class=Base)")
    project.edit("sample_app/extensions.py", "from sqlalchemy import MetaData",
                 "from sqlalchemy import MetaData\nfrom sqlalchemy.orm import DeclarativeBase")
    assert project.run().code == 0  # the sample app still matches its migrations on this base
    project.write("sample_app/models/audit.py",
                  "from sqlalchemy.orm import Mapped, mapped_column\n\nfrom ..extensions import Base\n\n\n"
                  'class AuditLog(Base):\n    __tablename__ = "audit_log"\n\n'
                  "    id: Mapped[int] = mapped_column(primary_key=True)\n")
    result = project.run()
    assert result.code == 1, result.output
    assert ("sample_app/models/audit.py:6: imports: model `AuditLog` (table `audit_log`) is defined in "
            f"`sample_app.models.audit`, {NOT_IMPORTED}") in result.out


def test_model_whose_table_the_migrations_create_is_one_finding_not_a_drop(project: Project) -> None:
    project.write("sample_app/models/audit.py", AUDIT)
    revision = project.write("migrations/versions/aaaa00000001_add_audit_log.py", '''\
"""add audit log

Revision ID: aaaa00000001
Revises: e9e549eb0d5f
"""
from alembic import op
import sqlalchemy as sa

revision = 'aaaa00000001'
down_revision = 'e9e549eb0d5f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_log',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('action', sa.String(length=50), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log')),
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)


def downgrade():
    op.drop_table('audit_log')
''')
    relpath = str(revision.relative_to(project.path))
    created = project.line_of(relpath, "op.create_table(")
    # What drift alone says: a table (and its index) to drop.
    drift_only = project.run("--skip", "imports")
    assert drift_only.code == 1, drift_only.output
    assert "drift: table `audit_log` is created by the migrations but no model defines it" in drift_only.out
    assert "ix_audit_log_action" in drift_only.out

    result = project.run()
    assert result.code == 1, result.output
    assert ("sample_app/models/audit.py:4: imports: model `AuditLog` (table `audit_log`) is defined in "
            "`sample_app.models.audit`, which the app does not import when it loads, so autogenerate "
            f"cannot see it; the migrations create the table ({relpath}:{created}), so `flask db "
            "migrate` would even generate a drop_table for it") in result.out
    assert ("then `flask db check` compares it with the migrations") in result.out
    assert "drift:" not in result.out and "1 error" in result.out


@pytest.mark.parametrize("text", [
    "from ..extensions import db\n\n\nclass TimestampedModel(db.Model):\n    __abstract__ = True\n\n"
    "    created_at = db.Column(db.DateTime)\n",
    "from ..extensions import db\n\n\nclass TimestampMixin:\n    updated_at = db.Column(db.DateTime)\n\n\n"
    "class BaseModel(db.Model):\n    __abstract__ = True\n",
], ids=["abstract", "mixin"])
def test_abstract_models_and_mixins_pass(project: Project, text: str) -> None:
    project.write("sample_app/models/base.py", text)
    result = project.run()
    assert result.code == 0, result.output
    assert "imports" in result.out and "no problems in" in result.out  # it ran, and found nothing


OTHER_BASES = {
    "declarative_base()": '''\
import sqlalchemy as sa

try:
    from sqlalchemy.orm import declarative_base
except ImportError:  # SQLAlchemy 1.3
    from sqlalchemy.ext.declarative import declarative_base

AnalyticsBase = declarative_base()


class PageView(AnalyticsBase):
    __tablename__ = "page_view"

    id = sa.Column(sa.Integer, primary_key=True)
''',
    "DeclarativeBase": '''\
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class AnalyticsBase(DeclarativeBase):
    pass


class PageView(AnalyticsBase):
    __tablename__ = "page_view"

    id: Mapped[int] = mapped_column(primary_key=True)
''',
}


@pytest.mark.parametrize("base", [
    "declarative_base()",
    pytest.param("DeclarativeBase", marks=pytest.mark.skipif(
        not HAS_DECLARATIVE_BASE, reason="DeclarativeBase is new in SQLAlchemy 2.0")),
])
def test_other_declarative_base_is_info_only(project: Project, base: str) -> None:
    project.write("sample_app/analytics.py", OTHER_BASES[base])
    result = project.run()
    assert result.code == 0, result.output
    line = project.line_of("sample_app/analytics.py", "class PageView")
    assert (f"sample_app/analytics.py:{line}: imports: info: `sample_app.analytics` defines models on a "
            "declarative base the app's db does not use (`PageView`); migcheck does not check them"
            ) in result.out


def test_tests_migrations_and_virtualenvs_are_not_searched(project: Project) -> None:
    model = AUDIT.replace("from ..extensions import db", "from sample_app.extensions import db")
    for number, relpath in enumerate([
        "sample_app/tests/factories.py", "sample_app/test_models.py", "sample_app/conftest.py",
        "tests/models.py", "migrations/models.py", ".venv/lib/python3.11/site-packages/x/models.py",
        "env2/lib/models.py", "build/lib/sample_app/models/audit.py", "node_modules/x/models.py",
    ]):
        project.write(relpath, model.replace("audit_log", f"t{number}").replace("AuditLog", f"A{number}"))
    project.write("env2/pyvenv.cfg", "home = /usr/bin\n")
    result = project.run("--source", ".")
    assert result.code == 0, result.output
    assert "imports:" not in result.out and "no problems" in result.out
    # The same model in a searched directory is found (so the run above could have failed).
    project.write("plugins/audit.py", model)
    result = project.run("--source", ".")
    assert result.code == 1, result.output
    assert "plugins/audit.py:4: imports: model `AuditLog` (table `audit_log`)" in result.out


def test_source_adds_directories(project: Project) -> None:
    project.write("plugins/audit.py", AUDIT.replace("from ..extensions", "from sample_app.extensions"))
    assert project.run().code == 0  # outside the app's package: not searched by default
    result = project.run("--source", "plugins")
    assert result.code == 1, result.output
    assert ("plugins/audit.py:4: imports: model `AuditLog` (table `audit_log`) is defined in "
            "`plugins.audit`") in result.out
    assert (f"fix: import `plugins.audit` in `{MODELS_INIT}` next to the import of the app's other models "
            "at line 3 (e.g. `from plugins.audit import AuditLog`)") in result.out
    # A directory that is not a package name, outside sys.path: imported from there.
    project.write("my-plugins/audit.py", AUDIT.replace("from ..extensions", "from sample_app.extensions"))
    result = project.run("--source", "my-plugins")
    assert result.code == 1, result.output
    assert ("my-plugins/audit.py:4: imports: model `AuditLog` (table `audit_log`) is defined in `audit`"
            in result.out)
    missing = project.run("--source", "nowhere")
    assert missing.code == 2 and "--source nowhere: no such directory" in missing.err


def test_module_that_fails_to_import_warns_and_the_run_goes_on(project: Project) -> None:
    project.write("sample_app/models/broken.py", AUDIT.replace("AuditLog", "Broken").replace(
        "audit_log", "broken") + "\nraise RuntimeError('needs a running Redis')\n")
    project.write("sample_app/models/typo.py", "from ..extensions import db\n\n\nclass Typo(db.Model)\n")
    project.write("sample_app/models/audit.py", AUDIT)
    result = project.run()
    assert result.code == 1, result.output
    raise_line = project.line_of("sample_app/models/broken.py", "raise RuntimeError")
    assert (f"sample_app/models/broken.py:{raise_line}: imports: warning: could not import "
            "`sample_app.models.broken` to look for models the app does not import: RuntimeError: "
            "needs a running Redis") in result.out
    assert ("sample_app/models/typo.py:4: imports: warning: could not import `sample_app.models.typo` "
            "to look for models the app does not import: SyntaxError: expected ':'") in result.out
    assert "sample_app/models/audit.py:4: imports: model `AuditLog`" in result.out
    assert "1 error, 2 warnings" in result.out
    assert "Traceback" not in result.output


def test_module_that_connects_at_import_is_refused(project: Project) -> None:
    # Importing a candidate must not undo the promise: no connection to the configured database.
    project.write("sample_app/models/seed.py", AUDIT + (
        "\n\nimport os\n\nimport sqlalchemy as sa\n\n"
        "sa.create_engine(os.environ['DATABASE_URL']).connect()\n"))
    result = project.run()
    # The imports check catches the error, but a refused connection still ends the run (exit 2).
    assert result.code == 2, result.output  # the fixture checks the configured database was not created
    assert result.err.startswith("migcheck: error: Refused a connection to the sqlite database"), result.err
    line = project.line_of("sample_app/models/seed.py", ".connect()")
    assert result.err.endswith(f"It happens at sample_app/models/seed.py:{line}.\n"), result.err


def test_output_of_an_imported_module_does_not_reach_the_report(project: Project) -> None:
    project.write("sample_app/models/audit.py", "print('hello from audit')\n" + AUDIT)
    result = project.run()
    assert result.code == 1, result.output
    assert "hello from audit" not in result.output


def test_flask_db_migrate_sees_no_changes_but_migcheck_fails(project: Project) -> None:
    """The trap from the issue, shown with the real `flask db` commands."""
    project.write("sample_app/models/audit.py", AUDIT)
    dev_db = project.path / "dev.sqlite"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLASK_")},
           "DATABASE_URL": f"sqlite:///{dev_db}", "PYTHONDONTWRITEBYTECODE": "1",
           "FLASK_APP": "sample_app:app"}  # `flask --app` is Flask 2.2+

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flask", "db", *args],
                              cwd=project.path, env=env, capture_output=True, text=True, timeout=120)

    assert flask("upgrade").returncode == 0
    migrate = flask("migrate", "-m", "audit")
    assert migrate.returncode == 0, migrate.stderr
    assert "No changes in schema detected" in migrate.stdout + migrate.stderr
    assert len(list((project.path / "migrations/versions").glob("*.py"))) == 3  # nothing generated
    if hasattr(flask_migrate, "check"):  # `flask db check` is new in Flask-Migrate 4.0
        check = flask("check")
        assert check.returncode == 0, check.stdout + check.stderr
    dev_db.unlink()

    result = project.run()
    assert result.code == 1, result.output
    assert (f"sample_app/models/audit.py:4: imports: model `AuditLog` (table `audit_log`) is defined in "
            f"`sample_app.models.audit`, {NOT_IMPORTED}") in result.out


def test_bound_model_whose_table_the_migrations_create(tmp_path: Path) -> None:
    """A model of a second bind moved to a module nothing imports: one finding, naming the bind."""
    shutil.copytree(ROOT / "tests" / "fixtures" / "multibind", tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    shop = Project(tmp_path)
    models = shop.read("shop/models.py")
    start = models.index("class AuditEvent")
    shop.write("shop/models.py", models[:start].rstrip() + "\n")
    shop.write("shop/audit.py", "from . import db\n\n\n" + models[start:])
    result = shop.run(app="shop:create_app()")
    assert result.code == 1, result.output
    [revision] = (tmp_path / "migrations" / "versions").glob("*.py")
    created = shop.line_of(str(revision.relative_to(tmp_path)), "op.create_table('audit_event'")
    assert ("shop/audit.py:4: imports: model `AuditEvent` (table `audit_event`, bind `audit`) is defined in "
            "`shop.audit`, which the app does not import when it loads, so autogenerate cannot see it; the "
            f"migrations create the table (migrations/versions/{revision.name}:{created})") in result.out
    # The app factory imports the models: the new import belongs next to that one, not at the top.
    factory_line = shop.line_of("shop/__init__.py", "from . import models")
    assert (f"fix: import `shop.audit` in `shop/__init__.py` next to the import of the app's other models "
            f"at line {factory_line} (e.g. `from .audit import AuditEvent`)") in result.out
    assert "drift:" not in result.out and "1 error" in result.out
