"""Configuration classes for the sample application."""

from __future__ import annotations

import os


class Config:
    """Base configuration, shared by every environment."""

    SECRET_KEY: str | None = os.environ.get("SECRET_KEY", "dev-not-secret")
    # Relative SQLite paths are resolved against the instance folder by
    # Flask-SQLAlchemy 3.
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL", "sqlite:///sample_app.sqlite")
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    POSTS_PER_PAGE = 20
    TESTING = False
    DEBUG = False


class DevelopmentConfig(Config):
    DEBUG = True


class TestingConfig(Config):
    TESTING = True
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "TEST_DATABASE_URL", "sqlite:///sample_app-test.sqlite"
    )


class ProductionConfig(Config):
    SECRET_KEY = os.environ.get("SECRET_KEY")


CONFIGS: dict[str, type[Config]] = {
    "default": Config,
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
