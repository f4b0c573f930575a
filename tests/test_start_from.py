"""Histories that do not start from an empty database: `--start-from` / `start_from`.

The sample app gets a `token` table that no revision creates (a fresh install made it with
`create_all`): the new base revision `0a1e9c5d7b21` adds a column to it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from conftest import Project
from servers import Server

from migcheck.project import start

LEGACY = "0a1e9c5d7b21"
FIRST = "1f5ecceb0b09"  # sample_app's first revision, now after LEGACY
SECOND = "428a6cc61e6a"
SEED = "CREATE TABLE token (\n    id INTEGER NOT NULL,\n    value VARCHAR(64) NOT NULL,\n" \
       "    PRIMARY KEY (id)\n);\n"
TOKEN_MODEL = '''

class Token(db.Model):
    __tablename__ = "token"

    id = db.Column(db.Integer, primary_key=True, autoincrement=False)
    value = db.Column(db.String(64), nullable=False)
    expires_at = db.Column(db.DateTime)
'''


def legacy_history(project: Project, upgrade: str | None = None, downgrade: str | None = None) -> str:
    """A base revision that alters `token`, which only the seed (or the model) creates."""
    project.append("sample_app/models/user.py", TOKEN_MODEL)
    path = project.add_revision(
        LEGACY, None,
        upgrade or "op.add_column('token', sa.Column('expires_at', sa.DateTime(), nullable=True))",
        downgrade or "op.drop_column('token', 'expires_at')", doc="update from 1.5 to 2.0")
    project.edit(project.revision_file(FIRST), "down_revision = None", f"down_revision = {LEGACY!r}")
    return path


def test_history_that_alters_a_table_no_revision_creates_cannot_be_checked(project: Project) -> None:
    path = legacy_history(project)
    result = project.run("--no-cache")
    assert result.code == 2, result.output
    line = project.line_of(path, "op.add_column")
    assert f"{path}:{line}: upgrade: " in result.out
    assert "`token`" in result.out and LEGACY in result.out and "no revision creates" in result.out
    assert "--start-from" in result.out and "start_from" in result.out
    assert "fix the revision" not in result.out


def test_start_from_a_sql_file(project: Project) -> None:
    legacy_history(project)
    project.write("seed.sql", SEED)
    result = project.run("--start-from", "seed.sql")
    assert result.code == 0, result.output
    assert "walk started at the base revision, on the schema from seed.sql" in result.out


def test_start_from_in_pyproject(project: Project) -> None:
    legacy_history(project)
    project.write("seed.sql", SEED)
    project.write("pyproject.toml", '[tool.migcheck]\nstart_from = "seed.sql"\n')
    result = project.run()
    assert result.code == 0, result.output
    # the cache keys the seed's content: another seed, another walk
    assert project.run().code == 0
    project.write("seed.sql", SEED.replace("value VARCHAR(64)", "value VARCHAR(32)"))
    changed = project.run()
    assert changed.code == 1, changed.output
    assert "token.value" in changed.out and "from cache" not in changed.out


def test_start_from_round_trips_the_base_revision(project: Project) -> None:
    path = legacy_history(project, downgrade="pass")
    project.write("seed.sql", SEED)
    result = project.run("--no-cache", "--start-from", "seed.sql")
    assert result.code == 1, result.output
    assert f"{path}:{project.line_of(path, 'def downgrade')}: roundtrip: downgrade of `{LEGACY}` leaves " \
           "column `token.expires_at` behind" in result.out


def test_a_stamped_seed_starts_the_walk_after_its_revision(project: Project) -> None:
    legacy_history(project)
    # a defect before the start is not the walk's: those revisions are graph-checked only
    project.replace_downgrade(FIRST, "    pass\n")
    # the schema of an old release at FIRST, stamped: neither LEGACY nor FIRST runs
    project.write("seed.sql", SEED.replace("value VARCHAR(64) NOT NULL,", "value VARCHAR(64) NOT NULL,\n"
                                           "    expires_at DATETIME,") + f"""
CREATE TABLE tag (id INTEGER NOT NULL, name VARCHAR(50) NOT NULL, CONSTRAINT pk_tag PRIMARY KEY (id),
    CONSTRAINT uq_tag_name UNIQUE (name));
CREATE TABLE user (id INTEGER NOT NULL, username VARCHAR(64) NOT NULL, email VARCHAR(255) NOT NULL,
    display_name VARCHAR(120), is_active BOOLEAN NOT NULL,
    created_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, CONSTRAINT pk_user PRIMARY KEY (id),
    CONSTRAINT uq_user_email UNIQUE (email), CONSTRAINT uq_user_username UNIQUE (username));
CREATE TABLE post (id INTEGER NOT NULL, author_id INTEGER NOT NULL, title VARCHAR(200) NOT NULL,
    slug VARCHAR(200) NOT NULL, body TEXT NOT NULL, published_at DATETIME,
    created_at DATETIME DEFAULT (CURRENT_TIMESTAMP) NOT NULL, CONSTRAINT pk_post PRIMARY KEY (id),
    CONSTRAINT fk_post_author_id_user FOREIGN KEY(author_id) REFERENCES user (id),
    CONSTRAINT uq_post_author_id_slug UNIQUE (author_id, slug));
CREATE INDEX ix_post_author_id ON post (author_id);
CREATE INDEX ix_post_published_at ON post (published_at);
CREATE TABLE post_tags (post_id INTEGER NOT NULL, tag_id INTEGER NOT NULL,
    CONSTRAINT pk_post_tags PRIMARY KEY (post_id, tag_id),
    CONSTRAINT fk_post_tags_post_id_post FOREIGN KEY(post_id) REFERENCES post (id) ON DELETE CASCADE,
    CONSTRAINT fk_post_tags_tag_id_tag FOREIGN KEY(tag_id) REFERENCES tag (id) ON DELETE CASCADE);
CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);
INSERT INTO alembic_version VALUES ('{FIRST}');
""")
    result = project.run("--start-from", "seed.sql", "--since", "base")
    assert result.code == 0, result.output
    assert f"walk started at {FIRST} (alembic_version in seed.sql)" in result.out
    # a later revision's defect is found from there
    project.replace_downgrade(SECOND, "    pass\n")
    result = project.run("--start-from", "seed.sql", "--since", "base")
    assert result.code == 1, result.output
    assert f"downgrade of `{SECOND}` leaves column `post.view_count` behind" in result.out
    assert FIRST not in result.out.split("walk started")[0]
    # a seed stamped past the revision that creates a table it lacks: the fix is the seed's
    project.edit("seed.sql", "CREATE TABLE post_tags", "CREATE TABLE unrelated")
    project.write("seed.sql", project.read("seed.sql").replace("TABLE post ", "TABLE old_post ")
                  .replace("ON post (", "ON old_post ("))
    lacking = project.run("--start-from", "seed.sql")
    assert lacking.code == 1, lacking.output
    assert f"`post` is created by `{FIRST}` (migrations/versions/" in lacking.out
    assert "has not run before this revision on the starting schema seed.sql" in lacking.out
    project.edit("seed.sql", f"VALUES ('{FIRST}')", "VALUES ('123456abcdef')")
    unknown = project.run("--start-from", "seed.sql")
    assert unknown.code == 2
    assert "--start-from: the starting schema seed.sql stamps revision 123456abcdef, which is not in " \
           "migrations" in unknown.err


def test_start_from_a_dialect_path_on_sqlite(project: Project) -> None:
    legacy_history(project)
    project.write("seed/sqlite.sql", "-- the schema a fresh install made; CREATE TABLE in a comment: no\n"
                  + SEED.replace("CREATE TABLE token", "CREATE TABLE token /* made by create_all; */"))
    result = project.run("--no-cache", "--start-from", "seed/{dialect}.sql")
    assert result.code == 0, result.output
    assert "on the schema from seed/sqlite.sql" in result.out
    project.append("seed/sqlite.sql", "\nCREATE INDEX ix_token_value ON token (valu);\n")
    broken = project.run("--no-cache", "--start-from", "seed/{dialect}.sql")
    assert broken.code == 2
    assert "--start-from: the starting schema seed/sqlite.sql failed at line " \
           f"{project.line_of('seed/sqlite.sql', 'ix_token_value')} ('CREATE INDEX ix_token_value ON token " \
           "(valu);'): OperationalError: no such column: valu." in broken.err
    missing = project.run("--no-cache", "--start-from", "other/{dialect}.sql")
    assert missing.code == 2
    assert "--start-from: no such file 'other/sqlite.sql' (`{dialect}` is sqlite here)" in missing.err


def test_start_from_a_dialect_path_on_postgresql(project: Project, postgres: Server) -> None:
    legacy_history(project)
    without = project.run("--db-url", postgres.url)
    assert without.code == 2, without.output
    assert "acts on table `token`, which no revision creates (UndefinedTable" in without.out
    project.write("seed/postgresql.sql", """-- as pg_dump writes it
SELECT pg_catalog.set_config('search_path', '', false);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.value := lower(NEW.value); RETURN NEW; END;
$$;
CREATE TABLE public.token (
    id integer NOT NULL,
    value character varying(64) NOT NULL
);
ALTER TABLE ONLY public.token ADD CONSTRAINT token_pkey PRIMARY KEY (id);
CREATE TRIGGER token_touch BEFORE INSERT ON public.token FOR EACH ROW EXECUTE FUNCTION public.touch();
""")
    result = project.run("--db-url", postgres.url, "--start-from", "seed/{dialect}.sql")
    assert result.code == 0, result.output
    assert "on the schema from seed/postgresql.sql" in result.out


def test_start_from_a_function(project: Project) -> None:
    legacy_history(project)
    project.write("sample_app/install.py", '''import sqlalchemy as sa

OLD = sa.MetaData()
sa.Table("token", OLD, sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
         sa.Column("value", sa.String(64), nullable=False))


def create_schema(connection):
    """What `flask init` of release 1.5 made."""
    OLD.create_all(connection)
''')
    result = project.run("--no-cache", "--start-from", "sample_app.install:create_schema")
    assert result.code == 0, result.output
    assert "on the schema from sample_app.install:create_schema" in result.out
    project.edit("sample_app/install.py", "OLD.create_all(connection)", "raise RuntimeError('no')")
    broken = project.run("--no-cache", "--start-from", "sample_app.install:create_schema")
    assert broken.code == 2
    assert f"raised at sample_app/install.py:{project.line_of('sample_app/install.py', 'raise')} " \
           "RuntimeError: no" in broken.err


def test_a_table_a_later_revision_creates_is_still_an_upgrade_error(project: Project) -> None:
    path = project.add_revision(LEGACY, None, "op.add_column('comment', sa.Column('x', sa.Integer()))",
                                doc="too early")
    project.edit(project.revision_file(FIRST), "down_revision = None", f"down_revision = {LEGACY!r}")
    result = project.run("--no-cache")
    assert result.code == 1, result.output
    assert f"{path}:{project.line_of(path, 'op.add_column')}: upgrade: upgrade to `{LEGACY}` (too early) " \
           "failed: OperationalError: no such table: comment" in result.out
    assert "`comment` is created by `e9e549eb0d5f`" in result.out


def test_an_upgrade_that_catches_its_own_error(project: Project) -> None:
    path = project.add_revision("5cb310101a1f", "e9e549eb0d5f", """
        try:
            op.drop_column('post', 'legacy_flag')  # 1.x installs had it
        except Exception:
            pass
        """, doc="drop legacy flag")
    result = project.run("--no-cache", "--select", "upgrade,roundtrip")
    assert result.code == 0, result.output
    assert f"{path}:{project.line_of(path, 'op.drop_column')}: upgrade: info: upgrade of `5cb310101a1f` " \
           "caught OperationalError: " in result.out
    # caught on a table no revision creates: the history needs its starting schema, as when it raises
    legacy = legacy_history(project, upgrade="""
        try:
            op.add_column('token', sa.Column('expires_at', sa.DateTime(), nullable=True))
        except Exception:
            pass
        """)
    result = project.run("--no-cache", "--select", "upgrade,roundtrip")
    assert result.code == 2, result.output
    assert f"{legacy}:{project.line_of(legacy, 'op.add_column')}: upgrade: upgrade to `{LEGACY}` " \
           "(update from 1.5 to 2.0) acts on table `token`, which no revision creates" in result.out


def test_start_from_a_mysqldump_on_mariadb(project: Project, mysql: Server) -> None:
    legacy_history(project)
    without = project.run("--db-url", mysql.url)
    assert without.code == 2, without.output
    assert "acts on table `token`, which no revision creates (" in without.out
    project.write("seed/mysql.sql", """/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!40101 SET NAMES utf8mb4 */;
-- a comment; with a semicolon
CREATE TABLE `token` (
  `id` int(11) NOT NULL,
  `value` varchar(64) NOT NULL,
  PRIMARY KEY (`id`)
);
DELIMITER ;;
CREATE TRIGGER token_touch BEFORE INSERT ON token FOR EACH ROW BEGIN
  SET NEW.value = LOWER(NEW.value);
  SET NEW.value = REPLACE(NEW.value, '%;', '');
END ;;
DELIMITER ;
/*!40101 SET CHARACTER_SET_CLIENT=@OLD_CHARACTER_SET_CLIENT */;
""")
    result = project.run("--db-url", mysql.url, "--start-from", "seed/{dialect}.sql")
    assert result.code == 0, result.output
    assert "on the schema from seed/mysql.sql" in result.out


def test_a_missing_constraint_of_a_table_the_start_creates_is_an_upgrade_failure(postgres: Server,
                                                                                 project: Project) -> None:
    # lemur drops `certificates_name_key1`, a duplicate constraint only its production databases
    # have: PostgreSQL says `constraint "..." of relation "certificates" does not exist`, which is
    # not a table missing from the starting schema.
    legacy_history(project)
    project.write("seed.sql", SEED)
    path = project.add_revision("d20b0c01", "e9e549eb0d5f",
                                "op.drop_constraint('token_value_key1', 'token', type_='unique')",
                                doc="drop duplicate key")
    result = project.run("--start-from", "seed.sql", "--db-url", postgres.url, "--select", "upgrade",
                         "--no-cache")
    assert result.code == 1, result.output
    assert (f"{path}:{project.line_of(path, 'op.drop_constraint')}: upgrade: upgrade to `d20b0c01` "
            "(drop duplicate key) failed: UndefinedObject: constraint \"token_value_key1\" of relation "
            "\"token\" does not exist") in result.out
    assert "starting schema" not in result.out


def test_a_start_function_imports_from_the_current_directory_only_while_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As under `flask migcheck` with an app the current directory does not hold: not on sys.path.
    (tmp_path / "seed_only_here.py").write_text(
        "def create(connection):\n    import seed_helper_here  # imported when called\n"
        "    seed_helper_here.create(connection)\n")
    (tmp_path / "seed_helper_here.py").write_text(
        "import sqlalchemy as sa\n\ndef create(connection):\n"
        "    sa.Table('token', sa.MetaData(), sa.Column('id', sa.Integer)).create(connection)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    for name in ("seed_only_here", "seed_helper_here"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    seed = start.resolve("seed_only_here:create", "sqlite", "--start-from")
    assert str(tmp_path) not in sys.path
    url = f"sqlite:///{tmp_path / 'scratch.sqlite'}"
    start.apply(seed, url, "sqlite")
    assert str(tmp_path) not in sys.path
    assert "token" in sa.inspect(sa.create_engine(url)).get_table_names()
