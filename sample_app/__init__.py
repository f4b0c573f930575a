"""A small blogging application used to exercise migcheck.

Run it with any of::

    flask --app sample_app:app run
    flask --app "sample_app:create_app()" db upgrade
    flask --app "sample_app:create_app('testing')" db check
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from flask import Flask

from .config import CONFIGS, Config
from .extensions import db, migrate

#: The Flask-Migrate directory lives next to this package, at the repo top level.
MIGRATIONS_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations"
)


def create_app(config: str | type[Config] | Mapping[str, Any] | None = None) -> Flask:
    """Application factory.

    ``config`` may be a configuration name (``"testing"``, ``"development"``,
    ...), a config class, or a mapping of overrides applied on top of the
    default configuration. When omitted, ``FLASK_CONFIG`` selects the name.
    """
    app = Flask(__name__)

    if config is None:
        config = os.environ.get("FLASK_CONFIG", "default")
    if isinstance(config, str):
        try:
            app.config.from_object(CONFIGS[config])
        except KeyError:
            raise ValueError(f"unknown config name {config!r}") from None
    elif isinstance(config, Mapping):
        app.config.from_object(Config)
        app.config.update(config)
    else:
        app.config.from_object(config)

    db.init_app(app)
    migrate.init_app(app, db, directory=MIGRATIONS_DIR)

    # Importing the models registers their tables on db.metadata.
    from . import models  # noqa: F401
    from .views import bp

    app.register_blueprint(bp)
    return app


app = create_app()
