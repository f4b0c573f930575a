# ruff: noqa: E501  (the revision bodies keep an ignore comment on the line it ignores)
"""The safety check: operations of undeployed revisions that would fail or lock production.

Each rule runs on one new revision holding the operation on a table that existed before (a finding
at its line), the same operation on a table created in that revision (none) and a suppressed one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from conftest import ROOT, Project
from servers import Server

HEAD = "e9e549eb0d5f"
NEW = "5afe00000001"
MARK = "# <- flagged"
# Rules only the observation on a --db-url server gives (tests/test_observe.py tests them).
OBSERVED_ONLY = ("safety-table-rewrite", "safety-lock-timeout", "safety-lock-held", "safety-not-online")


def _accepts_not_valid() -> bool:
    """`postgresql_not_valid=True` is new in SQLAlchemy 1.4.32; before it, NOT VALID is written in SQL."""
    try:
        sa.CheckConstraint("x > 0", postgresql_not_valid=True)
    except sa.exc.ArgumentError:
        return False
    return True


NOT_VALID = _accepts_not_valid()
# A table the revision creates first: operations on it are never flagged.
FRESH = """\
op.create_table('fresh',
    sa.Column('id', sa.Integer(), primary_key=True),
    sa.Column('name', sa.String(50), nullable=True),
    sa.Column('code', sa.String(20), nullable=True),
    sa.Column('ref', sa.Integer(), nullable=True))
"""


def add_revision(project: Project, body: str, revision: str = NEW, down: str = HEAD) -> str:
    """A revision after `down` whose upgrade() runs `body`; returns its path."""
    return project.add_revision(revision, down, body, doc="change")


def safety_findings(project: Project, *args: str, env: dict[str, str] | None = None, locks: bool = False
                    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The safety findings and the report; on a PostgreSQL --db-url server without the observed lock
    rules unless `locks` (tests/test_observe.py tests them)."""
    result = project.run("--format", "json", "--select", "safety", *args, env=env)
    assert result.code in (0, 1), result.output
    report = json.loads(result.out)
    upgrade = [f for f in report["findings"] if f["check"] == "upgrade"]
    assert not upgrade, upgrade
    return [f for f in report["findings"] if f["check"] == "safety"
            and (locks or f["rule"] not in ("safety-lock-timeout", "safety-lock-held"))], report


CASES = {
    "safety-add-not-null-column": (f"""\
with op.batch_alter_table('post') as batch_op:
    batch_op.add_column(sa.Column('rating', sa.Integer(), nullable=False))  {MARK}
    batch_op.add_column(sa.Column('stars', sa.Integer(), server_default='0', nullable=False))
    batch_op.add_column(sa.Column('score', sa.Integer(), nullable=False))  # migcheck: ignore[safety-add-not-null-column]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.add_column(sa.Column('n', sa.Integer(), nullable=False))
""", ()),
    "safety-drop-column": (f"""\
with op.batch_alter_table('post') as batch_op:
    batch_op.drop_column('body')  {MARK}
with op.batch_alter_table('user') as batch_op:
    # migcheck: ignore[safety-drop-column] -- nothing reads user.bio since v2
    batch_op.drop_column('bio')
with op.batch_alter_table('fresh') as batch_op:
    batch_op.drop_column('name')
""", ()),
    "safety-drop-table": (f"""\
op.drop_table('post_tags')  {MARK}
op.drop_table('comment')  # migcheck: ignore[safety-drop-table]
op.drop_table('fresh')
""", ()),
    "safety-rename-column": (f"""\
with op.batch_alter_table('post') as batch_op:
    batch_op.alter_column('title', new_column_name='headline')  {MARK}
with op.batch_alter_table('user') as batch_op:
    batch_op.alter_column('bio', new_column_name='about')  # migcheck: ignore[safety-rename-column]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.alter_column('name', new_column_name='label')
""", ()),
    "safety-rename-table": (f"""\
op.rename_table('tag', 'label')  {MARK}
op.rename_table('comment', 'remark')  # migcheck: ignore[safety-rename-table]
op.rename_table('fresh', 'fresher')
op.drop_table('fresher')
""", ()),
    "safety-set-not-null": (f"""\
with op.batch_alter_table('user') as batch_op:
    batch_op.alter_column('display_name', nullable=False)  {MARK}
    batch_op.alter_column('username', nullable=False)
with op.batch_alter_table('post') as batch_op:
    batch_op.alter_column('published_at', nullable=False)  # migcheck: ignore[safety-set-not-null]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.alter_column('name', nullable=False)
""", ()),
    "safety-change-type": (f"""\
with op.batch_alter_table('user') as batch_op:
    batch_op.alter_column('email', type_=sa.Integer())  {MARK}
    batch_op.alter_column('username', type_=sa.String(100))
    batch_op.alter_column('display_name', existing_type=sa.String(120), type_=sa.Text())
with op.batch_alter_table('post') as batch_op:
    batch_op.alter_column('title', type_=sa.Integer())  # migcheck: ignore[safety-change-type]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.alter_column('code', type_=sa.Integer())
""", ()),
    "safety-add-unique": (f"""\
op.create_index('ix_user_display_name', 'user', ['display_name'], unique=True)  {MARK}
with op.batch_alter_table('post') as batch_op:
    batch_op.create_unique_constraint('uq_post_title', ['title'])  # migcheck: ignore[safety-add-unique]
op.create_index('ix_fresh_name', 'fresh', ['name'], unique=True)
with op.batch_alter_table('fresh') as batch_op:
    batch_op.create_unique_constraint('uq_fresh_code', ['code'])
    batch_op.add_column(sa.Column('handle', sa.String(20), unique=True))
""", ()),
    "safety-index-not-concurrent": (f"""\
op.create_index('ix_user_display_name', 'user', ['display_name'])  {MARK}
with op.get_context().autocommit_block():
    op.create_index('ix_post_title', 'post', ['title'], postgresql_concurrently=True)
op.drop_index('ix_post_author_id', table_name='post')  # migcheck: ignore[safety-index-not-concurrent]
op.create_index('ix_fresh_name', 'fresh', ['name'])
op.drop_index('ix_fresh_name', table_name='fresh')
""", ("--target", "postgresql")),
    "safety-concurrently-in-transaction": (f"""\
op.create_index('ix_user_display_name', 'user', ['display_name'], postgresql_concurrently=True)  {MARK}
op.drop_index('ix_post_author_id', table_name='post', postgresql_concurrently=True)  # migcheck: ignore[safety-concurrently-in-transaction]
op.create_index('ix_fresh_name', 'fresh', ['name'], postgresql_concurrently=True)
""", ("--target", "postgresql")),
    "safety-constraint-validates": (f"""\
with op.batch_alter_table('post') as batch_op:
    batch_op.create_check_constraint('ck_post_title', 'length(title) > 0')  {MARK}
{"    batch_op.create_check_constraint('ck_post_slug', 'length(slug) > 0', postgresql_not_valid=True)" if NOT_VALID else ""}
with op.batch_alter_table('user') as batch_op:
    batch_op.create_foreign_key('fk_user_tag', 'tag', ['display_name'], ['name'])  # migcheck: ignore[safety-constraint-validates]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.create_foreign_key('fk_fresh_ref_user', 'user', ['ref'], ['id'])
""", ("--target", "postgresql")),
    "safety-volatile-default": (f"""\
with op.batch_alter_table('user') as batch_op:
    batch_op.add_column(sa.Column('luck', sa.Float(), server_default=sa.text('(random())')))  {MARK}
with op.batch_alter_table('post') as batch_op:
    batch_op.add_column(sa.Column('seen_at', sa.DateTime(), server_default=sa.text('(CURRENT_TIMESTAMP)')))
    batch_op.add_column(sa.Column('salt', sa.Float(), server_default=sa.text('(random())')))  # migcheck: ignore[safety-volatile-default]
with op.batch_alter_table('fresh') as batch_op:
    batch_op.add_column(sa.Column('luck', sa.Float(), server_default=sa.text('(random())')))
""", ("--target", "postgresql")),
}


@pytest.mark.parametrize("rule", list(CASES))
def test_rule_flags_existing_tables_only(project: Project, rule: str) -> None:
    body, args = CASES[rule]
    path = add_revision(project, FRESH + body)
    findings, report = safety_findings(project, *args)
    assert [(f["rule"], f["path"], f["line"]) for f in findings] == [
        (rule, path, project.line_of(path, MARK))]
    assert findings[0]["details"]["revision"] == NEW
    assert report["suppressed"] == {"inline": 1}


def test_postgresql_rules_need_a_postgresql_target(project: Project) -> None:
    add_revision(project, FRESH + CASES["safety-index-not-concurrent"][0])
    findings, report = safety_findings(project)  # the app is configured with SQLite
    assert findings == []
    assert report["notes"] == ["safety: 1 revision in scope (the head revision: not in a git "
                               "repository); deploy target sqlite (the app's SQLALCHEMY_DATABASE_URI)"]


def test_target_from_config(project: Project) -> None:
    add_revision(project, FRESH + CASES["safety-index-not-concurrent"][0])
    project.write("pyproject.toml", '[tool.migcheck]\ntarget = "postgresql"\n')
    findings, report = safety_findings(project)
    assert [f["rule"] for f in findings] == ["safety-index-not-concurrent"]
    assert (f"deploy target postgresql (target in [tool.migcheck] of {project.path / 'pyproject.toml'})"
            in report["notes"][0])
    _, report = safety_findings(project, "--target", "postgresql")
    assert "deploy target postgresql (--target)" in report["notes"][0]


def test_raw_sql(project: Project, postgres: Server) -> None:
    path = add_revision(project, FRESH + f"""\
op.execute('ALTER TABLE post DROP COLUMN body')  {MARK}
op.execute(sa.text('ALTER TABLE fresh ADD COLUMN extra INTEGER NOT NULL DEFAULT 0'))
op.execute('ALTER TABLE fresh DROP COLUMN extra')
op.execute("UPDATE post SET title = title || ''")
op.execute('CREATE VIEW recent AS SELECT id FROM post')
op.execute('DROP VIEW recent')
op.execute('DROP TRIGGER IF EXISTS nothing_here ON post')
op.execute('ALTER TABLE fresh RENAME CONSTRAINT pk_fresh TO fresh_pk')  # unchecked, but a new table
op.execute('CREATE INDEX ix_user_bio ON "user" (bio)')  # migcheck: ignore[safety-index-not-concurrent]
""")
    findings, report = safety_findings(project, "--target", "postgresql", "--db-url", postgres.url)
    assert [(f["rule"], f["line"], f["severity"]) for f in findings] == [
        ("safety-drop-column", project.line_of(path, MARK), "error"),
        ("safety-sql-unchecked", project.line_of(path, "DROP TRIGGER"), "info")]
    assert findings[0]["details"]["statement"] == "ALTER TABLE post DROP COLUMN body"
    assert findings[0]["object"] == "post.body"
    assert report["suppressed"] == {"inline": 1}


# The same type changes through op.alter_column and through PostgreSQL's SQL: the same findings.
TYPE_CHANGES = {
    "op": """\
op.alter_column('post', 'title', type_=sa.Text())
op.alter_column('post', 'slug', type_=sa.String(300))
op.alter_column('user', 'display_name', type_=sa.String(60))  # <- narrower
op.alter_column('post', 'view_count', type_=sa.BigInteger())  # <- rewrites
op.alter_column('user', 'email', type_=sa.String(255))
""",
    "sql": """\
op.execute('ALTER TABLE post ALTER COLUMN title TYPE TEXT')
op.execute('ALTER TABLE post ALTER COLUMN slug SET DATA TYPE character varying(300)')
op.execute('ALTER TABLE "user" ALTER COLUMN display_name TYPE varchar(60)')  # <- narrower
op.execute('ALTER TABLE post ALTER COLUMN view_count TYPE bigint USING view_count::bigint')  # <- rewrites
op.execute('ALTER TABLE "user" ALTER COLUMN email TYPE VARCHAR(255)')
""",
}


@pytest.mark.parametrize("form", list(TYPE_CHANGES))
def test_type_change_same_judgement_in_sql_and_op(project: Project, postgres: Server, form: str) -> None:
    path = add_revision(project, TYPE_CHANGES[form])
    [finding], _ = safety_findings(project, "--db-url", postgres.url)  # one for the revision
    changes = finding["details"]["objects"]
    # observed on the server: both rewrite their table (a prediction that did not would be dropped)
    assert [(finding["rule"], o["object"], o["line"]) for o in changes] == [
        ("safety-table-rewrite", "user.display_name", project.line_of(path, "# <- narrower")),
        ("safety-table-rewrite", "post.view_count", project.line_of(path, "# <- rewrites"))]
    assert "from VARCHAR(120) to VARCHAR(60)" in changes[0]["message"]
    assert "from INTEGER to BIGINT" in changes[1]["message"]


def test_sql_dropping_what_does_not_exist_is_safe(project: Project, postgres: Server) -> None:
    path = add_revision(project, f"""\
op.execute('DROP TABLE IF EXISTS old_thing')
op.execute('DROP VIEW IF EXISTS old_view')
op.execute('DROP INDEX IF EXISTS ix_old_thing')
op.execute('ALTER TABLE post DROP COLUMN IF EXISTS old_column')
op.execute('ALTER TABLE IF EXISTS old_thing DROP COLUMN name')
op.execute('DROP TABLE IF EXISTS comment')  {MARK}
op.execute('ALTER TABLE post DROP COLUMN IF EXISTS body')  # <- exists
op.execute('DROP INDEX IF EXISTS ix_post_author_id')  # <- exists too
""")
    findings, _ = safety_findings(project, "--db-url", postgres.url)
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-drop-table", project.line_of(path, MARK)),
        ("safety-drop-column", project.line_of(path, "# <- exists")),
        ("safety-index-not-concurrent", project.line_of(path, "# <- exists too"))]


def test_one_finding_per_unique_index(project: Project, postgres: Server) -> None:
    path = add_revision(project, """\
op.execute('CREATE UNIQUE INDEX ix_user_display_name ON "user" (display_name)')  # <- 1
op.execute('CREATE UNIQUE INDEX ix_post_title ON post (title)')  # <- 2
op.execute('CREATE UNIQUE INDEX ix_post_slug ON post (slug)')  # <- 3
op.create_index('ix_comment_body', 'comment', ['body'], unique=True)  # <- 4
with op.get_context().autocommit_block():
    op.execute('CREATE UNIQUE INDEX CONCURRENTLY ix_tag_name_unique ON tag (name)')  # <- 5
""")
    [finding], _ = safety_findings(project, "--db-url", postgres.url)  # one for the revision
    indexes = finding["details"]["objects"]
    assert [(finding["rule"], o["line"]) for o in indexes] == [
        ("safety-add-unique", project.line_of(path, f"# <- {n}")) for n in range(1, 6)]
    assert "without postgresql_concurrently=True: it fails if the rows have duplicates, and blocks " \
        "writes while it builds" in indexes[0]["message"]
    assert indexes[4]["message"].startswith("adds a unique index to `tag`, which existed before: it "
                                            "fails if the rows have duplicates, leaving an invalid index")


def test_ddl_in_do_blocks(project: Project, postgres: Server) -> None:
    path = add_revision(project, FRESH + f"""\
op.execute('DO $$ BEGIN ALTER TABLE tag DROP COLUMN name; END $$')  {MARK}
op.execute(\"\"\"
    DO $$
    BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'mood') THEN
            CREATE TYPE mood AS ENUM ('happy', 'sad');
        END IF;
    EXCEPTION WHEN duplicate_object THEN null;
    END $$;
\"\"\")
op.execute(\"\"\"
    CREATE FUNCTION touch() RETURNS trigger AS $body$
    BEGIN
        NEW.title := upper(NEW.title);
        RETURN NEW;
    END;
    $body$ LANGUAGE plpgsql
\"\"\")
op.execute("DO $$ BEGIN EXECUTE 'ALTER TABLE fresh DROP COLUMN code'; END $$")
op.execute("DO $$ DECLARE t text; BEGIN FOR t IN SELECT 'post' LOOP EXECUTE format('ALTER TABLE %I ADD x int', t); END LOOP; END $$")  # <- dynamic
""")
    findings, _ = safety_findings(project, "--db-url", postgres.url)
    assert [(f["rule"], f["object"], f["line"]) for f in findings] == [
        ("safety-drop-column", "tag.name", project.line_of(path, MARK)),
        ("safety-sql-unchecked", NEW, project.line_of(path, "# <- dynamic"))]


def test_created_by_an_earlier_revision_in_scope(project: Project) -> None:
    add_revision(project, FRESH, revision="5afe00000001")
    second = add_revision(project, f"""\
with op.batch_alter_table('fresh') as batch_op:
    batch_op.drop_column('name')  # <- only when the table is deployed
with op.batch_alter_table('post') as batch_op:
    batch_op.drop_column('body')  {MARK}
""", revision="5afe00000002", down="5afe00000001")
    both, report = safety_findings(project, "--since", HEAD)
    assert [(f["object"], f["line"]) for f in both] == [("post.body", project.line_of(second, MARK))]
    assert "2 revisions in scope (after e9e549eb0d5f (--since))" in report["notes"][0]
    # With only the head revision in scope, `fresh` was deployed by the revision before.
    [head_only], _ = safety_findings(project)  # one finding for the revision's two drops
    assert sorted(o["object"] for o in head_only["details"]["objects"]) == ["fresh.name", "post.body"]
    # With every revision in scope, `post` is new too: nothing was deployed.
    everything, _ = safety_findings(project, "--since", "base")
    assert everything == []


def test_default_run_with_round_trip_and_cache(project: Project) -> None:
    path = add_revision(project, f"with op.batch_alter_table('post') as batch_op:\n"
                                 f"    batch_op.drop_column('body')  {MARK}\n"
                                 "# migcheck: irreversible\n")
    expected = [("safety", "safety-drop-column", f"{path}:{project.line_of(path, MARK)}")]
    for attempt in ("walked", "from the cache"):
        result = project.run("--skip", "drift,imports")
        assert result.code == 1, result.output
        found = [line for line in result.out.splitlines() if ": safety: " in line]
        assert len(found) == 1 and found[0].startswith(expected[0][2]), (attempt, result.out)
        assert "drops column `post.body`" in found[0]
    assert "4 from cache" in result.out
    # An entry made without the safety check cannot stand in for the revisions it must inspect.
    project.run("--no-cache")
    skipped = project.run("--skip", "drift,imports,safety")
    assert skipped.code == 0 and ": safety: " not in skipped.out, skipped.output
    again = project.run("--select", "upgrade,safety")
    assert again.code == 1 and "drops column `post.body`" in again.out, again.output


def test_summary_and_verbose_reason(project: Project) -> None:
    add_revision(project, "with op.batch_alter_table('user') as batch_op:\n"
                          "    # migcheck: ignore[safety-drop-column] -- nothing reads user.bio since v2\n"
                          "    batch_op.drop_column('bio')\n")
    result = project.run("--select", "safety")
    assert result.code == 0, result.output
    assert "safety: 1 revision in scope (the head revision: not in a git repository); deploy " \
           "target sqlite (the app's SQLALCHEMY_DATABASE_URI)" in result.out
    assert "1 suppressed" in result.out and "nothing reads" not in result.out
    verbose = project.run("--select", "safety", "--verbose")
    assert "safety-drop-column" in verbose.out and "nothing reads user.bio since v2" in verbose.out


# --- scope in a real git repository ---------------------------------------------------------------

def git(project: Project, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(project.path), "-c", "user.name=t", "-c", "user.email=t@t",
                           *args], capture_output=True, text=True, check=True)
    return done.stdout


def test_scope_is_the_branch_new_revisions(project: Project) -> None:
    deployed = add_revision(project, "op.drop_table('post_tags')\n", revision="5afe00000001")
    git(project, "init", "-q", "-b", "main")
    git(project, "add", "sample_app", "migrations")
    git(project, "commit", "-q", "-m", "deployed")
    git(project, "checkout", "-q", "-b", "feature")
    new = add_revision(project, f"op.drop_table('comment')  {MARK}\n", revision="5afe00000002",
                       down="5afe00000001")
    git(project, "add", "migrations")
    git(project, "commit", "-q", "-m", "feature")
    findings, report = safety_findings(project)
    assert [(f["object"], f["path"]) for f in findings] == [("comment", new)]
    assert "1 revision in scope (new since main)" in report["notes"][0]
    # Uncommitted revision files are new too.
    third = add_revision(project, "op.drop_table('tag')\n", revision="5afe00000003",
                         down="5afe00000002")
    findings, report = safety_findings(project)
    assert sorted(f["object"] for f in findings) == ["comment", "tag"]
    assert "2 revisions in scope (new since main)" in report["notes"][0]
    (project.path / third).unlink()
    # --git-base names another base; --since overrides git.
    findings, _ = safety_findings(project, "--git-base", "HEAD")
    assert findings == []
    findings, _ = safety_findings(project, "--since", "1f5ecceb0b09")  # comment is new then
    assert [f["object"] for f in findings] == ["post_tags"]
    assert deployed != new
    # Pushed with an upstream of its own (origin/feature): the base is still main, not the
    # branch's own remote copy.
    remote = project.path.parent / f"{project.path.name}-remote.git"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    git(project, "remote", "add", "origin", str(remote))
    git(project, "push", "-q", "-u", "origin", "main", "feature")
    findings, report = safety_findings(project)
    assert [f["object"] for f in findings] == ["comment"]
    assert "1 revision in scope (new since main)" in report["notes"][0]
    # In a GitHub Actions pull request, the base branch as fetched from the remote.
    _, report = safety_findings(project, env={"GITHUB_BASE_REF": "main"})
    assert "1 revision in scope (new since origin/main)" in report["notes"][0]
    # The project's config can say what is deployed.
    project.write("pyproject.toml", '[tool.migcheck]\nsince = "1f5ecceb0b09"\n')
    findings, report = safety_findings(project)
    assert [f["object"] for f in findings] == ["post_tags"]
    assert "after 1f5ecceb0b09 (--since)" in report["notes"][0]
    (project.path / "pyproject.toml").unlink()
    result = project.run("--select", "safety", "--git-base", "no-such-branch")
    assert result.code == 2 and "--git-base 'no-such-branch' is not a commit" in result.err
    result = project.run("--select", "safety", "--since", "zzz")
    assert result.code == 2 and "--since 'zzz'" in result.err


# --- PostgreSQL, on the real server ---------------------------------------------------------------

def test_postgresql_rules_on_the_server(project: Project, postgres: Server) -> None:
    path = add_revision(project, FRESH + """\
op.create_index('ix_user_display_name', 'user', ['display_name'])  # <- not concurrent
with op.get_context().autocommit_block():
    op.create_index('ix_post_title', 'post', ['title'], postgresql_concurrently=True)
op.create_foreign_key('fk_user_tag', 'user', 'tag', ['display_name'], ['name'])  # <- validates
""" + ("op.create_check_constraint('ck_post_slug', 'post', 'length(slug) > 0', postgresql_not_valid=True)"
       if NOT_VALID else "op.execute('ALTER TABLE post ADD CONSTRAINT ck_post_slug CHECK (length(slug) > 0) NOT VALID')") + """
op.add_column('user', sa.Column('token', sa.Text(), server_default=sa.text('gen_random_uuid()::text')))  # <- volatile
op.add_column('post', sa.Column('seen_at', sa.DateTime(), server_default=sa.text('now()')))
op.create_index('ix_fresh_name', 'fresh', ['name'])
op.create_foreign_key('fk_fresh_ref_user', 'fresh', 'user', ['ref'], ['id'])
op.add_column('fresh', sa.Column('token', sa.Text(), server_default=sa.text('gen_random_uuid()::text')))
op.execute('ALTER TABLE post ADD CONSTRAINT fk_post_tag FOREIGN KEY (author_id) REFERENCES tag (id) NOT VALID')
op.execute('ALTER TABLE post VALIDATE CONSTRAINT fk_post_tag')
op.execute('CREATE UNIQUE INDEX CONCURRENTLY ix_tag_name ON tag (name)')  # <- in transaction
""")
    result = project.run("--format", "json", "--select", "safety", "--db-url", postgres.url)
    report = json.loads(result.out)
    found = [(f["rule"], f["line"]) for f in report["findings"]
             if f["check"] == "safety" and f["rule"] not in OBSERVED_ONLY[1:]]
    assert found == [
        ("safety-index-not-concurrent", project.line_of(path, "# <- not concurrent")),
        ("safety-constraint-validates", project.line_of(path, "# <- validates")),
        ("safety-table-rewrite", project.line_of(path, "# <- volatile")),  # observed: replaces the prediction
        ("safety-concurrently-in-transaction", project.line_of(path, "# <- in transaction")),
    ], result.output
    # PostgreSQL itself refuses the last one: the upgrade finding says so, at the same line.
    [failed] = [f for f in report["findings"] if f["check"] == "upgrade"]
    assert "cannot run inside a transaction block" in failed["message"]
    assert failed["line"] == project.line_of(path, "# <- in transaction")
    assert "deploy target postgresql (the --db-url server)" in report["notes"][0]


@pytest.mark.parametrize("form", ["url", "options"])
def test_each_bind_has_its_own_target(tmp_path: Path, form: str) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "multibind", tmp_path, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shop = Project(tmp_path)
    if form == "options":  # a bind given as its engine's options, URL included
        if metadata.version("flask-sqlalchemy").startswith("2."):
            pytest.skip("Flask-SQLAlchemy 3.0 added binds given as a dict of engine options")
        shop.edit("shop/__init__.py", '"audit": os.environ.get("AUDIT_DATABASE_URL", "sqlite:///audit.sqlite"),',
                  '"audit": {"url": os.environ["AUDIT_DATABASE_URL"], "pool_pre_ping": True},')
    path = str(shop.write("migrations/versions/5afe00000009_indexes.py", '''"""indexes"""
from alembic import op
import sqlalchemy as sa

revision = '5afe00000009'
down_revision = '60c1cdbd0bad'
branch_labels = None
depends_on = None


def upgrade(engine_name):
    globals()["upgrade_%s" % engine_name]()


def downgrade(engine_name):
    pass


def upgrade_():
    op.create_index('ix_product_price_cents', 'product', ['price_cents'])  # SQLite: fine


def upgrade_audit():
    op.create_index('ix_audit_event_action', 'audit_event', ['action'])  # <- PostgreSQL
    with op.batch_alter_table('audit_event') as batch_op:
        batch_op.drop_column('created_at')  # <- everywhere
''').relative_to(tmp_path))
    result = shop.run("--format", "json", "--select", "safety", app="shop:create_app()",
                      env={"AUDIT_DATABASE_URL": "postgresql+pg8000://audit@db.example.com/audit"})
    assert result.code == 1, result.output
    report = json.loads(result.out)
    assert [(f["rule"], f["line"], f["details"]["bind"]) for f in report["findings"]] == [
        ("safety-index-not-concurrent", shop.line_of(path, "# <- PostgreSQL"), "audit"),
        ("safety-drop-column", shop.line_of(path, "# <- everywhere"), "audit")]
    assert report["findings"][1]["message"].endswith("(in `5afe00000009`, bind `audit`)")
    assert report["notes"] == ["safety: 1 revision in scope (the head revision: not in a git "
                               "repository); deploy target postgresql (the app's "
                               "SQLALCHEMY_BINDS['audit']), sqlite (the app's SQLALCHEMY_DATABASE_URI)"]


def test_mysql_rules_on_the_server(project: Project, mysql: Server) -> None:
    path = add_revision(project, """\
op.alter_column('tag', 'name', existing_type=sa.String(50), type_=sa.String(100))  # <- 1 to 2 byte length
op.alter_column('post', 'slug', existing_type=sa.String(200), type_=sa.String(300))
op.alter_column('user', 'bio', existing_type=sa.Text(), type_=sa.String(500))  # <- narrower
op.add_column('post', sa.Column('rating', sa.Integer(), nullable=False))  # <- filled with 0
op.create_index('ix_post_title', 'post', ['title'])
""")
    findings, report = safety_findings(project, "--db-url", mysql.url)
    # The server, asked, confirms the two predicted table copies (tests/test_observe.py)
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-not-online", project.line_of(path, "# <- 1 to 2 byte length")),
        ("safety-add-not-null-column", project.line_of(path, "# <- filled with 0")),
    ]
    assert [(o["object"], o["line"]) for o in findings[0]["details"]["objects"]] == [
        ("tag.name", project.line_of(path, "# <- 1 to 2 byte length")),
        ("user.bio", project.line_of(path, "# <- narrower"))]
    assert "fill the existing rows with the type's implicit default" in findings[1]["message"]
    assert "deploy target mariadb (the --db-url server)" in report["notes"][0] \
        or "deploy target mysql (the --db-url server)" in report["notes"][0]


def test_a_revision_the_data_check_runs_again_is_watched_to_its_end(project: Project) -> None:
    """The data check's rows make the first statement fail; the revision is then run again without
    rows, and the operations after that statement are still judged."""
    path = add_revision(project, """\
with op.batch_alter_table('user') as batch_op:
    batch_op.drop_column('display_name')  # <- dropped, then added back: not new
    batch_op.add_column(sa.Column('display_name', sa.String(120), nullable=True))
with op.batch_alter_table('user') as batch_op:  # <- fails with rows
    batch_op.add_column(sa.Column('age', sa.Integer(), nullable=False))
op.create_index('ix_post_title', 'post', ['title'], unique=True)  # <- after the failure
""")
    result = project.run("--format", "json", "--select", "safety,data", "--target", "postgresql")
    report = json.loads(result.out)
    assert [(f["rule"], f["line"]) for f in report["findings"]] == [
        ("data-fails-with-rows", project.line_of(path, "# <- fails with rows")),
        ("safety-drop-column", project.line_of(path, "# <- dropped, then added back")),
        ("safety-add-unique", project.line_of(path, "# <- after the failure")),
    ], result.output
