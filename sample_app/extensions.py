"""Extension instances, created unbound and initialised in the app factory."""

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

# Deterministic constraint names, so that migrations can refer to (and drop)
# constraints by name on every backend, including SQLite batch mode. No "ck" entry:
# SQLAlchemy 1.3 gives every Boolean column an unnamed CHECK constraint, which a
# "ck_%(table_name)s_%(constraint_name)s" convention refuses to create.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
