# ruff: noqa: E501  (the revision bodies keep a marker comment on the line it marks)
"""The safety check on a --db-url server: what each operation of an undeployed revision really did
(locks from pg_locks, rewrites from relfilenode, MySQL/MariaDB's online ALTER) replaces the prediction.

The data check runs too, so `post`, `user` and `tag` hold generated rows while the revisions run.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import Project
from servers import Server

HEAD = "e9e549eb0d5f"
NEW = "5afe00000001"


def observed(project: Project, server: Server, body: str, *args: str
             ) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    """Add a revision running `body` after head, check it on the server; (its path, the safety
    findings, the whole JSON report)."""
    path = project.add_revision(NEW, HEAD, body, doc="change")
    result = project.run("--format", "json", "--select", "safety,data", "--db-url", server.url, *args)
    assert result.code in (0, 1), result.output
    report = json.loads(result.out)
    assert not [f for f in report["findings"] if f["check"] in ("upgrade", "data")], result.output
    return path, [f for f in report["findings"] if f["check"] == "safety"], report


def test_type_change_that_rewrites(project: Project, postgres: Server) -> None:
    path, findings, _ = observed(project, postgres, """\
op.execute("SET LOCAL lock_timeout = '2s'")
op.alter_column('post', 'view_count', existing_type=sa.Integer(), type_=sa.BigInteger())  # <- rewrites
op.alter_column('post', 'slug', existing_type=sa.String(200), type_=sa.String(300))
""")
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-table-rewrite", project.line_of(path, "# <- rewrites"))]
    [rewrite] = findings
    assert rewrite["severity"] == "error"
    observation = rewrite["details"]["observed"]
    assert observation["took"] == {"post": "AccessExclusiveLock"}
    assert observation["rewrote"][0] == "post" and observation["rows"]["post"] > 0
    assert observation["lock_timeout"] == "2s" and rewrite["details"]["basis"] == "observed"
    assert "rewrote `post` under AccessExclusiveLock" in rewrite["message"]
    assert observation["summary"].startswith("took AccessExclusiveLock on post; rewrote post (")


def test_rewrite_however_written(project: Project, postgres: Server) -> None:
    path, findings, _ = observed(project, postgres, """\
op.execute("SET LOCAL lock_timeout = '2s'")
op.execute('ALTER TABLE post ALTER COLUMN view_count TYPE numeric(12, 0) USING view_count::numeric')  # <- raw
with op.batch_alter_table('user') as batch_op:
    batch_op.alter_column('bio', existing_type=sa.Text(), type_=sa.String(100))  # <- batch
""")
    # one finding for the revision's rewrites (each object at its line), and the lock on post held
    # while user is rewritten
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-table-rewrite", project.line_of(path, "# <- raw")),
        ("safety-lock-held", project.line_of(path, "# <- raw"))], findings
    assert [(o["object"], o["line"]) for o in findings[0]["details"]["objects"]] == [
        ("post.view_count", project.line_of(path, "# <- raw")), ("user.bio", project.line_of(path, "# <- batch"))]


def test_index_and_lock_timeout(project: Project, postgres: Server) -> None:
    path, findings, report = observed(project, postgres, """\
op.add_column('post', sa.Column('summary', sa.Text(), nullable=True))  # <- no timeout
op.create_index('ix_post_title', 'post', ['title'])  # <- share lock
""")
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-lock-timeout", project.line_of(path, "# <- no timeout")),
        ("safety-index-not-concurrent", project.line_of(path, "# <- share lock")),
    ], findings
    timeout, index = findings
    assert "lock_timeout" in timeout["message"] and "SET LOCAL lock_timeout" in timeout["hint"]
    assert timeout["details"]["observed"]["summary"].startswith("took AccessExclusiveLock on post; no rewrite")
    assert index["details"]["observed"]["took"] == {"post": "ShareLock"}
    assert index["details"]["basis"] == "observed"


def test_lock_timeout_set_in_the_revision(project: Project, postgres: Server) -> None:
    _, findings, _ = observed(project, postgres, """\
op.execute("SET LOCAL lock_timeout = '2s'")
op.add_column('post', sa.Column('summary', sa.Text(), nullable=True))
""")
    assert findings == []


def test_lock_held_through_a_backfill(project: Project, postgres: Server) -> None:
    path, findings, _ = observed(project, postgres, """\
op.execute("SET LOCAL lock_timeout = '2s'")
op.add_column('post', sa.Column('summary', sa.Text(), nullable=True))  # <- takes the lock
op.add_column('post', sa.Column('teaser', sa.Text(), nullable=True))
op.execute("UPDATE post SET summary = title")  # <- backfill
""")
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-lock-held", project.line_of(path, "# <- takes the lock"))], findings
    assert f"(line {project.line_of(path, '# <- backfill')})" in findings[0]["message"]


def test_text_report_and_mismatches(project: Project, postgres: Server) -> None:
    path = project.add_revision(NEW, HEAD, """\
op.execute("SET LOCAL lock_timeout = '2s'")
op.alter_column('post', 'published_at', existing_type=sa.DateTime(), type_=sa.DateTime(timezone=True))  # <- no rewrite
op.alter_column('post', 'view_count', existing_type=sa.Integer(), type_=sa.BigInteger())
""", doc="change")
    result = project.run("--select", "safety,data", "--db-url", postgres.url, "--verbose")
    assert result.code == 1, result.output
    assert "    observed: took no new lock on an existing table; rewrote post (3 rows, " in result.out
    assert "safety-change-type" not in result.out.split("prediction and observation")[0]
    assert (f"{path}:{project.line_of(path, '# <- no rewrite')}: predicted safety-change-type (a rewrite); "
            "observed took AccessExclusiveLock on post; rebuilt index ix_post_published_at (") in result.out


def test_predictions_without_a_server_say_so(project: Project) -> None:
    project.add_revision(NEW, HEAD, "op.create_index('ix_post_title', 'post', ['title'])", doc="change")
    result = project.run("--format", "json", "--select", "safety", "--target", "postgresql")
    [finding] = json.loads(result.out)["findings"]
    assert finding["details"]["basis"] == "predicted" and "observed" not in finding["details"]


def test_mariadb_online_alter(project: Project, mysql: Server) -> None:
    path, findings, _ = observed(project, mysql, """\
op.add_column('post', sa.Column('summary', sa.Text(), nullable=True))
op.alter_column('post', 'view_count', existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=False, existing_server_default='0')  # <- copy
op.alter_column('post', 'slug', existing_type=sa.String(200), type_=sa.String(300))
""")
    assert [(f["rule"], f["line"]) for f in findings] == [
        ("safety-not-online", project.line_of(path, "# <- copy"))], findings
    assert "ALGORITHM=INPLACE" in findings[0]["message"] and findings[0]["details"]["observed"]["reason"]


def test_lock_timeout_from_the_apps_connection_options(project: Project, postgres: Server) -> None:
    """The scratch engine leaves the app's engine options out; the lock_timeout they set still counts."""
    project.edit("sample_app/__init__.py", "    db.init_app(app)",
                 '    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"connect_args": {"options": "-c lock_timeout=3s"}}\n'
                 "    db.init_app(app)")
    _, findings, _ = observed(project, postgres, """\
op.add_column('post', sa.Column('summary', sa.Text(), nullable=True))
""")
    assert findings == []
