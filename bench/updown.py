"""Baseline: one process doing one full upgrade and one full downgrade with alembic.command.

Usage (from the project directory): python updown.py PACKAGE DATABASE_URL

This is the floor for any tool that upgrades and downgrades every revision: importing the app and
the libraries once, running env.py twice, executing every revision file's upgrade() and downgrade().
"""

from __future__ import annotations

import importlib
import os
import sys

from alembic import command


def main(package: str, database_url: str) -> int:
    sys.path.insert(0, os.getcwd())  # as `flask` does: the app is imported from the current directory
    app = importlib.import_module(package).create_app({"SQLALCHEMY_DATABASE_URI": database_url})
    with app.app_context():
        config = app.extensions["migrate"].migrate.get_config()
        command.upgrade(config, "head")
        command.downgrade(config, "base")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
