"""migcheck: catch drift between Flask-SQLAlchemy models and Flask-Migrate migrations."""

__version__ = "0.1.0"
