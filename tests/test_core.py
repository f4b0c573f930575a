"""End to end: the sample app passes, and a model change without a migration fails."""

from conftest import Project


def test_clean_sample_app_passes(project: Project) -> None:
    result = project.run()
    assert result.code == 0, result.output
    assert "no problems" in result.out
    assert "3 revisions" in result.out


def test_column_added_to_model_only(project: Project) -> None:
    project.edit("sample_app/models/user.py", "    bio = db.Column(db.Text)\n",
                 "    bio = db.Column(db.Text)\n    age = db.Column(db.Integer)\n")
    line = project.line_of("sample_app/models/user.py", "age = db.Column")
    result = project.run()
    assert result.code == 1, result.output
    assert (f"sample_app/models/user.py:{line}: drift: column `user.age` is in the model but no "
            "migration creates it") in result.out
    assert "batch_op.add_column(sa.Column('age', sa.Integer(), nullable=True))" in result.out
    assert 'flask db migrate -m "add user.age"' in result.out
