"""Findings name the true cause and a fix that is safe to follow (issue #19, section 1)."""

from __future__ import annotations

import json

from conftest import Project
from servers import Server

COMMENTS = "e9e549eb0d5f"  # creates the comment table and two indexes

LEGACY_MODEL = '''from sqlalchemy import Column, Integer
from sqlalchemy.orm import declarative_base

Base = declarative_base()


class Legacy(Base):
    __tablename__ = "legacy"
    id = Column(Integer, primary_key=True)
'''


def wrong_metadata(project: Project) -> None:
    """env.py compares with a declarative base holding one table; the app's models are on db.metadata."""
    project.write("sample_app/models/legacy.py", LEGACY_MODEL)
    project.append("sample_app/models/__init__.py", "from .legacy import Legacy  # noqa\n")
    project.add_revision("1e6ac1000001", COMMENTS,
                         "op.create_table('legacy', sa.Column('id', sa.Integer(), primary_key=True))",
                         "op.drop_table('legacy')", "legacy")
    project.edit("migrations/env.py", "target_db = current_app.extensions['migrate'].db\n",
                 "target_db = current_app.extensions['migrate'].db\n"
                 "from sample_app import models\ntarget_metadata = models.legacy.Base.metadata\n")
    project.edit("migrations/env.py", "            target_metadata=get_metadata(),",
                 "            target_metadata=target_metadata,")


def check_wrong_metadata(project: Project, result_out: str, code: int) -> None:
    assert code == 1, result_out
    line = project.line_of("migrations/env.py", "target_metadata = models.legacy.Base.metadata")
    found = [x for x in result_out.splitlines() if ": drift: " in x]
    assert len(found) == 1, result_out
    assert found[0].startswith(f"migrations/env.py:{line}: drift: env.py hands autogenerate "
                               "`models.legacy.Base.metadata` (1 table: `legacy`), not the MetaData "
                               "the models use (`db.")
    assert "5 tables that models define (`comment`, `post`, `post_tags`, `tag`, `user`)" in found[0]
    assert "drop user" not in result_out and "migrate -m" not in result_out
    assert "op.drop_table" not in result_out


def test_env_py_with_the_wrong_metadata_is_one_finding_at_env_py(project: Project) -> None:
    wrong_metadata(project)
    result = project.run("--select", "drift")
    check_wrong_metadata(project, result.out, result.code)
    report = json.loads(project.run("--select", "drift", "--format", "json").out)
    [finding] = report["findings"]
    assert finding["rule"] == "drift-wrong-metadata"


def test_env_py_with_the_wrong_metadata_on_a_server(project: Project, server: Server) -> None:
    wrong_metadata(project)
    result = project.run("--select", "drift", "--db-url", server.url)
    check_wrong_metadata(project, result.out, result.code)
