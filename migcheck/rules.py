"""Every rule id a check can emit, with what it means and how to fix it.

Rule ids are stable: configs, inline ignores, baselines and code scanning alerts refer to them.
A new kind of finding gets a new entry here (tests/test_reports.py fails for a rule id in the code
that is missing here); the README's rule table lists the same ids.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import NamedTuple

from migcheck.findings import Severity


class Rule(NamedTuple):
    id: str
    check: str
    severity: Severity  # the severity its findings have
    summary: str  # what a finding means
    fix: str  # what to do about it


_DRIFT_FIX = "Generate a revision with `flask db migrate`, review and commit it (or fix the model)."
_DRIFT_REMOVED_FIX = ("Removed on purpose: generate the drop with `flask db migrate`. Still a model: "
                      "make the app import its module. Managed outside the migrations: ignore it.")
_SQLITE_FIX = "Run migcheck with --db-url on the database type you deploy on, e.g. in CI."

_RULES = (
    Rule("graph-duplicate-revision", "graph", "error",
         "Two revision files use the same revision id; Alembic silently keeps only one of them.",
         "Give one of them a new id and point its children's down_revision at it."),
    Rule("graph-missing-revision", "graph", "fatal",
         "A revision's down_revision names a revision that does not exist, so the history cannot "
         "be read.",
         "Restore the missing revision file, or point down_revision at an existing revision."),
    Rule("graph-cycle", "graph", "fatal",
         "The down_revision links form a loop, so the history cannot be read.",
         "Make the down_revision that closes the loop point at an older revision."),
    Rule("graph-multiple-heads", "graph", "error",
         "The history has more than one head (without branch labels): `flask db upgrade` refuses "
         "to run.",
         'Merge the heads with `flask db merge heads -m "merge heads"` and commit the new revision.'),
    Rule("app-created-tables", "upgrade", "info",
         "The app created tables while it loaded (e.g. `db.create_all()` in the factory); they went "
         "to migcheck's scratch database, which was emptied before the checks.",
         "Nothing to do for migcheck; consider creating tables only through migrations."),
    Rule("upgrade-env-failed", "upgrade", "error",
         "The migrations' env.py raised before any migration ran.",
         "Fix env.py; `flask db upgrade` fails the same way."),
    Rule("upgrade-not-cached", "upgrade", "info",
         "A revision reads what no file's content keys (`current_app`, the environment, a file), "
         "so the cache keeps nothing from it on: every run walks it and the revisions after it again.",
         "Nothing to fix. If the revision need not depend on the configuration or the environment, "
         "take those reads out and the cache keeps it again; `--ignore upgrade-not-cached` hides this."),
    Rule("upgrade-failed", "upgrade", "error",
         "A revision's upgrade() raised while upgrading an empty database from base to head.",
         "Fix the revision so that `flask db upgrade` runs from an empty database (on SQLite, "
         "wrap ALTERs in `op.batch_alter_table`)."),
    Rule("upgrade-self-deadlock", "upgrade", "error",
         "On a --db-url server: a revision ran a statement through another connection than the "
         "migration's (the app's `db.session` or engine) that waited for a lock the migration's own "
         "transaction holds (e.g. after an ALTER TABLE): `flask db upgrade` hangs there forever. "
         "migcheck cancels the statement after a second and reports it.",
         "Run the statement on the migration's own connection: `op.get_bind().execute(...)` (or "
         "`op.execute`) instead of `db.session` / `db.engine`."),
    Rule("upgrade-needs-start", "upgrade", "fatal",
         "A revision acts on a table that no revision creates: the history does not start from an "
         "empty database (installs ran `db.create_all()` and `stamp head`, or old revisions were "
         "squashed away), so migcheck could not check it.",
         "Give the schema the first revision expects with `--start-from` / `start_from` (a SQL file, "
         "or `module:function`); see \"Histories that do not start from an empty database\"."),
    Rule("upgrade-caught-error", "upgrade", "info",
         "A revision's upgrade() caught an error an operation raised (try/except around `op.*`) and "
         "went on, so it did less than it says; errors reported after it may follow from that.",
         "Let the error stop the upgrade, or check first whether the operation applies."),
    Rule("upgrade-dangling-foreign-key", "upgrade", "error",
         "On SQLite: an upgrade failed over a missing table that an earlier revision's foreign key "
         "refers to, though no revision creates it (SQLite accepts such a key; PostgreSQL and MySQL "
         "refuse it where it is made).",
         "Create the table before the foreign key that refers to it, or refer to the right table; "
         "run with --db-url on your real database type."),
    Rule("upgrade-needs-server", "upgrade", "fatal",
         "On SQLite: a revision uses what only another database has (a type such as JSONB, a "
         "function, a `::` cast), so nothing from it on can be checked on SQLite.",
         "Run migcheck against a server of the type the revisions are written for with --db-url."),
    Rule("upgrade-needed", "upgrade", "fatal",
         "The upgrade check was not selected, but the selected checks that need the upgrade to head "
         "(drift, roundtrip, safety, data) could not run because it failed.",
         "Fix the failure it names (run with the upgrade check to see it as a finding of its own)."),
    Rule("drift-skipped", "drift", "info",
         "The drift check did not run because the upgrade to head failed.",
         "Fix the upgrade failure reported with it."),
    Rule("drift-wrong-metadata", "drift", "error",
         "env.py hands autogenerate a MetaData other than the one the app's models use, so tables or "
         "columns that models define look removed (`flask db migrate` would drop them).",
         "Set `target_metadata` in env.py to the models' MetaData (`db.metadata`; Flask-Migrate's "
         "env.py uses get_metadata()); do not run `flask db migrate` before that."),
    Rule("drift-add-table", "drift", "error",
         "A model's table is not created by any migration.", _DRIFT_FIX),
    Rule("drift-remove-table", "drift", "error",
         "The migrations create a table that no model defines.", _DRIFT_REMOVED_FIX),
    Rule("drift-add-column", "drift", "error",
         "A model's column is not created by any migration.", _DRIFT_FIX),
    Rule("drift-remove-column", "drift", "error",
         "The migrations create a column that the model does not have.", _DRIFT_REMOVED_FIX),
    Rule("drift-modify-type", "drift", "error",
         "A column's type in the migrations differs from the model's.", _DRIFT_FIX),
    Rule("drift-modify-nullable", "drift", "error",
         "A column is NULL/NOT NULL in the migrations but the other way in the model.", _DRIFT_FIX),
    Rule("drift-modify-default", "drift", "error",
         "A column's server default in the migrations differs from the model's "
         "(`--no-server-defaults` turns this comparison off).", _DRIFT_FIX),
    Rule("drift-modify-comment", "drift", "error",
         "A column's comment in the migrations differs from the model's.", _DRIFT_FIX),
    Rule("drift-add-table-comment", "drift", "error",
         "A table's comment in the model is not set by the migrations.", _DRIFT_FIX),
    Rule("drift-remove-table-comment", "drift", "error",
         "The migrations set a table comment that the model does not have.", _DRIFT_FIX),
    Rule("drift-add-index", "drift", "error",
         "A model's index is not created by any migration.", _DRIFT_FIX),
    Rule("drift-remove-index", "drift", "error",
         "The migrations create an index that the model does not have.", _DRIFT_REMOVED_FIX),
    Rule("drift-add-constraint", "drift", "error",
         "A model's unique or check constraint is not created by any migration.", _DRIFT_FIX),
    Rule("drift-remove-constraint", "drift", "error",
         "The migrations create a unique or check constraint that the model does not have.",
         _DRIFT_REMOVED_FIX),
    Rule("drift-add-fk", "drift", "error",
         "A model's foreign key is not created by any migration.", _DRIFT_FIX),
    Rule("drift-remove-fk", "drift", "error",
         "The migrations create a foreign key that the model does not have.", _DRIFT_REMOVED_FIX),
    Rule("drift-modify-fk", "drift", "error",
         "A foreign key in the migrations differs from the model's only in ON DELETE / ON UPDATE.",
         _DRIFT_FIX),
    Rule("drift-sqlite-comment", "drift", "warning",
         "A table or column has a comment, which a SQLite scratch database cannot keep, so its "
         "migration is not verified.", _SQLITE_FIX),
    Rule("drift-sqlite-timezone", "drift", "warning",
         "A column is a time-zone-aware DateTime, which SQLite cannot store, so its migration is not "
         "verified.", _SQLITE_FIX),
    Rule("drift-sqlite-enum", "drift", "warning",
         "A column is an Enum, which SQLite stores as VARCHAR, so changed members go unseen.",
         _SQLITE_FIX),
    Rule("drift-sqlite-check", "drift", "warning",
         "A model has a CHECK constraint: Alembic does not compare them, and SQLite does not run "
         "their SQL as your database does.",
         _SQLITE_FIX),
    Rule("imports-model-not-imported", "imports", "error",
         "A model class is defined in a module the app does not import when it loads, so "
         "autogenerate (`flask db migrate` / `flask db check`) cannot see it.",
         "Import the module where the app loads its models (e.g. in the models package's "
         "`__init__.py`), then compare it with the migrations."),
    Rule("imports-table-not-imported", "imports", "error",
         "A `db.Table(...)` is defined in a module the app does not import when it loads, so "
         "autogenerate cannot see it.",
         "Import the module where the app loads its models, then compare it with the migrations."),
    Rule("imports-failed", "imports", "warning",
         "A module that looks like it defines models could not be imported to look for models the "
         "app does not import.",
         "Fix the error; if the module is not meant to be imported, the warning is all it costs."),
    Rule("imports-other-metadata", "imports", "info",
         "A module defines models on a declarative base the app's db does not use; migcheck does "
         "not check them.",
         "If they belong in the app's database, derive them from db.Model."),
    Rule("roundtrip-downgrade-leaves", "roundtrip", "error",
         "A revision's downgrade() leaves behind something its upgrade() created.",
         "Make downgrade() undo exactly what upgrade() does, or mark the revision "
         "`# migcheck: irreversible`."),
    Rule("roundtrip-downgrade-drops", "roundtrip", "error",
         "A revision's downgrade() drops something its upgrade() did not create.",
         "Make downgrade() undo exactly what upgrade() does."),
    Rule("roundtrip-downgrade-not-restored", "roundtrip", "error",
         "A revision's upgrade() drops a column, index or constraint, and its downgrade() does not "
         "restore it.",
         "Make downgrade() re-create what upgrade() drops, or mark the revision "
         "`# migcheck: irreversible`."),
    Rule("roundtrip-downgrade-not-renamed-back", "roundtrip", "error",
         "A revision's upgrade() renames a column, index or constraint, and its downgrade() does not "
         "rename it back.",
         "Make downgrade() rename back what upgrade() renames."),
    Rule("roundtrip-downgrade-changes", "roundtrip", "error",
         "A revision's downgrade() does not restore a column or constraint as it was before.",
         "Make downgrade() restore the previous definition."),
    Rule("roundtrip-downgrade-failed", "roundtrip", "error",
         "A revision's downgrade() raises.",
         "Write a downgrade() that undoes upgrade(), or mark the revision "
         "`# migcheck: irreversible` if it cannot be undone."),
    Rule("roundtrip-reupgrade-failed", "roundtrip", "error",
         "Upgrading a revision again after its downgrade fails.",
         "The downgrade leaves something behind that upgrade() then trips over: remove it in "
         "downgrade()."),
    Rule("roundtrip-reupgrade-differs", "roundtrip", "error",
         "Upgrading a revision again after its downgrade gives a different schema.",
         "Make downgrade() remove everything upgrade() creates, so upgrade() runs the same way "
         "twice."),
    Rule("roundtrip-irreversible", "roundtrip", "info",
         "A revision is marked `# migcheck: irreversible`: its downgrade and the older ones are not "
         "tested.",
         "Nothing to do; remove the marker once the downgrade works."),
    Rule("roundtrip-downgrade-leaves-rows", "roundtrip", "error",
         "A revision's downgrade() leaves rows behind that its upgrade() inserted (a data migration "
         "undone only in part).",
         "Delete in downgrade() every row upgrade() inserts, or mark the revision "
         "`# migcheck: irreversible`."),
    Rule("roundtrip-downgrade-loses-rows", "roundtrip", "error",
         "A revision's downgrade() loses rows a table held after the upgrade (e.g. it drops and "
         "re-creates the table).",
         "Re-create a table by copying its rows (op.batch_alter_table does), not by dropping it."),
    Rule("roundtrip-upgrade-deletes-rows", "roundtrip", "warning",
         "A revision's upgrade() deletes rows (or drops a table that has rows) and its downgrade() "
         "cannot bring them back.",
         "If that is intended, end the deleting statement with `# migcheck: irreversible`; otherwise "
         "keep a copy of the rows for downgrade() to put back."),
    Rule("roundtrip-downgrade-changes-rows", "roundtrip", "warning",
         "A revision's downgrade() does not restore the values rows had before the upgrade (e.g. a "
         "backfill it keeps, which is usually fine).",
         "Restore in downgrade() the values upgrade() changes if they matter."),
    Rule("data-fails-with-rows", "data", "error",
         "A revision not deployed yet fails (upgrade, downgrade or re-upgrade) when the tables have "
         "rows, and passes on empty tables: it would fail on a production database.",
         "Write it for a database with data: give a new NOT NULL column a server_default or add "
         "it nullable, backfill, then set NOT NULL; de-duplicate before adding a unique index; "
         "convert stored values explicitly in a type change."),
    Rule("data-table-not-populated", "data", "info",
         "migcheck could not generate rows for a table (a CHECK constraint or trigger refused "
         "them, a NOT NULL column of an unknown type, ...), so it stays empty for the data check.",
         "Nothing to do; the revisions are still checked with rows in the other tables."),
    Rule("safety-add-not-null-column", "safety", "error",
         "A revision not deployed yet adds a NOT NULL column without a server default to a table that "
         "existed before it: the upgrade fails wherever that table has rows (MySQL and MariaDB fill "
         "them with the type's implicit default instead).",
         "Add the column nullable (or with a server_default), backfill it, then make it NOT NULL in "
         "a later revision."),
    Rule("safety-set-not-null", "safety", "warning",
         "A revision not deployed yet makes an existing column NOT NULL: it fails if any row holds "
         "NULL, and PostgreSQL checks every row under an exclusive lock.",
         "Backfill first; on PostgreSQL 12+ add `CHECK (col IS NOT NULL) NOT VALID`, VALIDATE it in a "
         "later revision, then SET NOT NULL (no scan) and drop the check."),
    Rule("safety-drop-column", "safety", "error",
         "A revision not deployed yet drops a column that existed before it: the deployed code may "
         "still read it during the rollout, and its data is gone.",
         "Deploy code that no longer uses the column first (SQLAlchemy: `deferred` / remove it from "
         "the model), drop it in a later release; if that is done, ignore the finding inline with "
         "the reason."),
    Rule("safety-drop-table", "safety", "error",
         "A revision not deployed yet drops a table that existed before it: the deployed code may "
         "still use it during the rollout, and its data is gone.",
         "Deploy code that no longer uses the table first, drop it in a later release; if that is "
         "done, ignore the finding inline with the reason."),
    Rule("safety-rename-column", "safety", "error",
         "A revision not deployed yet renames an existing column: the deployed code uses the old "
         "name until the rollout ends.",
         "Add the new column, write both, backfill, move the reads, then drop the old column in a "
         "later release (or keep the old column name and rename only the model attribute)."),
    Rule("safety-rename-table", "safety", "error",
         "A revision not deployed yet renames an existing table: the deployed code uses the old name "
         "until the rollout ends.",
         "Keep the table name and set `__tablename__` in the model, or create the new table, copy, "
         "switch the code and drop the old one in a later release."),
    Rule("safety-change-type", "safety", "warning",
         "A revision not deployed yet changes an existing column's type (other than a known safe "
         "widening such as a longer VARCHAR): the table is rewritten under a lock, or the change "
         "fails on values that do not convert.",
         "Add a column of the new type, backfill it, switch the code, then drop the old column; "
         "widen VARCHAR lengths instead where that is enough."),
    Rule("safety-add-unique", "safety", "warning",
         "A revision not deployed yet adds a unique constraint or unique index to an existing table: "
         "it fails on duplicate rows, and blocks writes while the index builds.",
         "Check for duplicates first; on PostgreSQL create the unique index with "
         "`postgresql_concurrently=True` inside `op.get_context().autocommit_block()`, then "
         "`ALTER TABLE ... ADD CONSTRAINT ... UNIQUE USING INDEX ...`."),
    Rule("safety-index-not-concurrent", "safety", "warning",
         "PostgreSQL: a revision not deployed yet creates or drops an index on an existing table "
         "without CONCURRENTLY, which blocks writes to the table until it is done.",
         "`op.create_index(..., postgresql_concurrently=True)` (or drop_index) inside "
         "`with op.get_context().autocommit_block():`."),
    Rule("safety-concurrently-in-transaction", "safety", "error",
         "PostgreSQL: a revision not deployed yet creates or drops an index CONCURRENTLY inside the "
         "migration's transaction, which PostgreSQL refuses.",
         "Run it inside `with op.get_context().autocommit_block():`."),
    Rule("safety-constraint-validates", "safety", "warning",
         "PostgreSQL: a revision not deployed yet adds a foreign key or CHECK constraint to an "
         "existing table without NOT VALID: every row is checked under a lock that blocks writes "
         "(for a foreign key, on both tables).",
         "Add it with `postgresql_not_valid=True` (or `NOT VALID` in SQL), then `ALTER TABLE ... "
         "VALIDATE CONSTRAINT ...` in a later revision."),
    Rule("safety-volatile-default", "safety", "warning",
         "PostgreSQL: a revision not deployed yet adds a column whose server default is volatile "
         "(random(), gen_random_uuid(), clock_timestamp(), nextval(), ...) to an existing table, "
         "which rewrites the whole table under an exclusive lock.",
         "Add the column without the default (or with a constant one), set the default, and backfill "
         "existing rows in batches."),
    Rule("safety-table-rewrite", "safety", "error",
         "Observed on PostgreSQL (--db-url): an operation of a revision not deployed yet rewrote a "
         "table that existed before it (its relfilenode changed: a type change, a volatile default, "
         "a recreated table, ...), copying every row while reads and writes wait.",
         "Add a column of the new type, backfill it in batches, switch the code, then drop the old "
         "column; for a default, add the column without it and backfill."),
    Rule("safety-lock-timeout", "safety", "warning",
         "Observed on PostgreSQL (--db-url): an operation of a revision not deployed yet takes "
         "AccessExclusiveLock, ExclusiveLock, ShareRowExclusiveLock or ShareLock on a table that "
         "existed before it with no lock_timeout in effect: while it waits behind a long query, every "
         "later query of the table waits behind it.",
         "Start the revision with `op.execute(\"SET LOCAL lock_timeout = '2s'\")`, or set it for every "
         "migration in env.py (`connection.execute(text(\"SET lock_timeout = '2s'\"))` before "
         "`context.run_migrations()`, or `connect_args={\"options\": \"-c lock_timeout=2s\"}`); "
         "retry the deploy if it times out."),
    Rule("safety-lock-held", "safety", "warning",
         "Observed on PostgreSQL (--db-url): after an operation takes AccessExclusiveLock on a table "
         "that existed before, the same transaction runs further statements (a backfill, another "
         "table's DDL), so every query of the table waits for all of them.",
         "Move the further statements to their own revision (or run them before the locking one), "
         "with `transaction_per_migration=True` in env.py's `context.configure()`."),
    Rule("safety-not-online", "safety", "error",
         "Observed on MySQL/MariaDB (--db-url): an ALTER TABLE of a revision not deployed yet on a "
         "table that existed before it cannot run with ALGORITHM=INSTANT nor with ALGORITHM=INPLACE, "
         "LOCK=NONE: the server copies the table while writes wait (the finding gives its reason).",
         "Change it in a way the server runs online (add a nullable column at the end, widen within "
         "the same length bytes), or use an online schema change tool (gh-ost, pt-online-schema-"
         "change) for this table."),
    Rule("safety-sql-unchecked", "safety", "info",
         "A revision not deployed yet runs raw SQL (`op.execute`) that changes the schema in a way "
         "migcheck does not recognize, so its safety is not checked.",
         "Review the statement by hand; prefer `op.*` operations, which migcheck checks."),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}


def lookup(rule_id: str, check: str) -> Rule:
    """The registered rule, or a plain description for an id this registry does not know yet."""
    return RULES.get(rule_id) or Rule(rule_id, check, "error", f"A `{check}` finding.",
                                      "See the finding's message.")


def matching(pattern: str) -> list[str]:
    """The registered rule ids a pattern names: an id, or a glob such as `drift-*`."""
    return [rule_id for rule_id in RULES if fnmatchcase(rule_id, pattern)]
