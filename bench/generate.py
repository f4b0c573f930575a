"""Generate a synthetic Flask-Migrate project for the benchmark: N revisions, M models.

Usage: python bench/generate.py DIR [--revisions N] [--models M] [--drift] [--bad-downgrades]

The project is what `flask db init` + one `flask db migrate` per change would give, without running
them (that takes minutes at N=1000): the migrations directory is copied from the installed
Flask-Migrate templates, and every revision is rendered by Alembic's own autogenerate renderer
(batch mode, as Flask-Migrate 4 configures it) through the project's script.py.mako. Revision ids and
dates are derived from the revision number, so the same N and M always give the same files.

Each revision either creates a model's table (with an index, and a foreign key to an earlier table)
or adds an indexed column to an existing table; the downgrades are the exact reverse (or, with
--bad-downgrades, all `pass`: a history that round-trips nowhere). The models at the end match head,
unless --drift adds one model column that no migration creates.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import re
import shutil
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import flask_migrate
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import ops
from alembic.util import format_as_comma
from mako.template import Template

PACKAGE = "benchapp"
APP = f"{PACKAGE}:app"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Column kinds, cycled through by the add-column revisions: (model source, SQLAlchemy type).
KINDS: tuple[tuple[str, sa.types.TypeEngine], ...] = (
    ("db.Integer", sa.Integer()),
    ("db.String(64)", sa.String(64)),
    ("db.Boolean", sa.Boolean()),
    ("db.DateTime", sa.DateTime()),
    ("db.Numeric(10, 2)", sa.Numeric(10, 2)),
    ("db.Date", sa.Date()),
    ("db.Text", sa.Text()),
)
DRIFT_COLUMN = "drift_note"
FIRST_DATE = datetime.datetime(2025, 1, 6, 9, 0, 0, 123456)


class Layout(NamedTuple):
    """What was generated, for the benchmark and the tests."""

    root: Path
    app: str
    revisions: int
    models: int
    drift_file: Path | None  # the models file holding the drifted column


class Model(NamedTuple):
    table: sa.Table
    class_name: str
    module: int
    source_lines: list[str]  # the column lines of the model class, in order


def generate(root: Path, revisions: int, models: int, drift: bool = False,
             bad_downgrades: bool = False) -> Layout:
    """Write the project into `root` (which must be empty or missing); `bad_downgrades`: every
    downgrade is `pass`."""
    if not 1 <= models <= revisions:
        raise ValueError(f"need 1 <= models <= revisions, got {models} models, {revisions} revisions")
    if root.exists() and any(root.iterdir()):
        raise ValueError(f"{root} is not empty")
    migrations = root / "migrations"
    _write_migrations_dir(migrations)
    template = Template(filename=str(migrations / "script.py.mako"))

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    created: list[Model] = []
    modules = min(models, 4)
    table_at = {index * revisions // models: index for index in range(models)}
    down_revision = None
    for number in range(revisions):
        if number in table_at:
            model = _new_model(metadata, table_at[number], modules, created)
            created.append(model)
            message = f"create {model.table.name}"
            upgrade = ops.UpgradeOps(ops=[
                ops.CreateTableOp.from_table(model.table),
                ops.ModifyTableOps(model.table.name, [
                    ops.CreateIndexOp.from_index(index)
                    for index in sorted(model.table.indexes, key=lambda index: str(index.name))
                ]),
            ])
        else:
            model = created[number * 7 % len(created)]
            column = _add_column(model, f"col_{number}", KINDS[number % len(KINDS)])
            message = f"add {model.table.name}.{column.name}"
            [index] = [index for index in model.table.indexes if list(index.columns) == [column]]
            upgrade = ops.UpgradeOps(ops=[ops.ModifyTableOps(model.table.name, [
                ops.AddColumnOp.from_column_and_tablename(None, model.table.name, column),
                ops.CreateIndexOp.from_index(index),
            ])])
        revision = hashlib.sha1(f"migcheck-bench-{number}".encode()).hexdigest()[:12]
        slug = re.sub(r"\W+", "_", message).strip("_")
        text = template.render_unicode(
            up_revision=revision, down_revision=down_revision, message=message,
            create_date=FIRST_DATE + datetime.timedelta(minutes=17 * number),
            upgrades=render_python_code(upgrade, render_as_batch=True),
            downgrades=("pass" if bad_downgrades
                        else render_python_code(upgrade.reverse(), render_as_batch=True)),
            imports="", branch_labels=None, depends_on=None, comma=format_as_comma,
        )
        (migrations / "versions" / f"{revision}_{slug}.py").write_text(text)
        down_revision = revision

    drift_file = None
    if drift:
        last = created[-1]
        last.source_lines.append(f"{DRIFT_COLUMN} = db.Column(db.String(32))")
        drift_file = root / PACKAGE / "models" / f"part_{last.module}.py"
    _write_package(root / PACKAGE, created, modules, revisions)
    return Layout(root, APP, revisions, models, drift_file)


def _new_model(metadata: sa.MetaData, index: int, modules: int, created: list[Model]) -> Model:
    name = f"model_{index}"
    columns = [sa.Column("id", sa.Integer(), primary_key=True),
               sa.Column("name", sa.String(80), nullable=False, index=True)]
    lines = ["id = db.Column(db.Integer, primary_key=True)",
             "name = db.Column(db.String(80), nullable=False, index=True)"]
    if created:
        parent = created[(index - 1) // 2].table.name
        columns.append(sa.Column(f"{parent}_id", sa.Integer(), sa.ForeignKey(f"{parent}.id"), index=True))
        lines.append(f'{parent}_id = db.Column(db.Integer, db.ForeignKey("{parent}.id"), index=True)')
    table = sa.Table(name, metadata, *columns)
    return Model(table, f"Model{index}", index % modules, lines)


def _add_column(model: Model, name: str, kind: tuple[str, sa.types.TypeEngine]) -> sa.Column:
    source, type_ = kind
    column = sa.Column(name, type_, index=True)
    model.table.append_column(column)  # index=True adds the named index to the table
    model.source_lines.append(f"{name} = db.Column({source}, index=True)")
    return column


def _write_migrations_dir(migrations: Path) -> None:
    """What `flask db init` writes, from the installed Flask-Migrate's single-database templates."""
    templates = Path(flask_migrate.__file__).parent / "templates" / "flask"
    (migrations / "versions").mkdir(parents=True)
    for source in templates.iterdir():
        if source.suffix == ".mako" and source.name != "script.py.mako":
            target = migrations / source.stem
            target.write_text(Template(filename=str(source)).render_unicode())
        elif source.is_file():
            shutil.copyfile(source, migrations / source.name)


def _write_package(package: Path, created: list[Model], modules: int, revisions: int) -> None:
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text(APP_SOURCE.format(revisions=revisions, models=len(created)))
    (package / "extensions.py").write_text(EXTENSIONS_SOURCE.format(naming=NAMING_CONVENTION))
    parts = [f"part_{module}" for module in range(modules)]
    (package / "models" / "__init__.py").write_text(
        '"""Importing every models module registers its tables on db.metadata."""\n\n'
        + "".join(f"from . import {part}  # noqa: F401\n" for part in parts)
    )
    for module, part in enumerate(parts):
        classes = [
            f"\n\nclass {model.class_name}(db.Model):\n"
            f'    __tablename__ = "{model.table.name}"\n\n'
            + "".join(f"    {line}\n" for line in model.source_lines)
            for model in created if model.module == module
        ]
        (package / "models" / f"{part}.py").write_text(
            '"""Generated models."""\n\nfrom ..extensions import db\n' + "".join(classes)
        )


APP_SOURCE = '''\
"""A synthetic Flask-Migrate project ({revisions} revisions, {models} models) from migcheck's bench."""

import os

from flask import Flask

from .extensions import db, migrate

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")


def create_app(config=None):
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ.get("DATABASE_URL", "sqlite:///benchapp.sqlite")
    app.config.update(config or {{}})
    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)
    from . import models  # noqa: F401

    return app


app = create_app()
'''

EXTENSIONS_SOURCE = '''\
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

NAMING_CONVENTION = {naming!r}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
'''


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=textwrap.dedent(__doc__ or "").split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where to write the project (empty or missing)")
    parser.add_argument("--revisions", "-n", type=int, default=50, help="number of revisions (default 50)")
    parser.add_argument("--models", "-m", type=int, default=20, help="number of models (default 20)")
    parser.add_argument("--drift", action="store_true",
                        help="leave one model column without a migration")
    parser.add_argument("--bad-downgrades", action="store_true", help="make every downgrade `pass`")
    args = parser.parse_args(argv)
    try:
        layout = generate(args.directory, args.revisions, args.models, args.drift, args.bad_downgrades)
    except ValueError as exc:
        parser.error(str(exc))
    print(f"generated {layout.revisions} revisions and {layout.models} models in {layout.root}; "
          f"check it with: cd {layout.root} && migcheck --app {layout.app}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
