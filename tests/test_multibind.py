"""A multi-database app (`flask db init --multidb`, SQLALCHEMY_BINDS, a model with __bind_key__)."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, Project

APP = "shop:create_app()"
MODELS = "shop/models.py"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Project]:
    shutil.copytree(ROOT / "tests" / "fixtures" / "multibind", tmp_path,
                    ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    made = Project(tmp_path)
    yield made
    for name in ("configured.sqlite", "audit.sqlite", "instance"):
        assert not (tmp_path / name).exists(), f"migcheck created {name}"
    assert not any(made.tmp.iterdir()), "migcheck left its scratch area behind"


def test_multibind_app_passes_clean(shop: Project) -> None:
    # The audit bind's driver is not installed: binds are redirected before engines exist.
    result = shop.run(app=APP, env={"AUDIT_DATABASE_URL": "postgresql+pg8000://audit@db.example.com/audit"})
    assert result.code == 0, result.output
    assert "no problems" in result.out
    assert "(shop, 1 revision," in result.out


def test_drift_on_the_bound_model_names_the_bind(shop: Project) -> None:
    created = "    created_at = db.Column(db.DateTime, nullable=False)\n"
    shop.edit(MODELS, created, created + "    actor = db.Column(db.String(80))\n")
    shop.edit(MODELS, "action = db.Column(db.String(50), nullable=False)",
              "action = db.Column(db.String(50), nullable=False, unique=True)")
    result = shop.run(app=APP, env={"AUDIT_DATABASE_URL": f"sqlite:///{shop.path / 'audit.sqlite'}"})
    assert result.code == 1, result.output
    assert (f"{MODELS}:{shop.line_of(MODELS, 'actor =')}: drift: column `audit_event.actor` is in the model "
            "but no migration creates it (bind `audit`)") in result.out
    assert "batch_op.add_column(sa.Column('actor', sa.String(length=80), nullable=True))" in result.out
    # No naming convention here: the constraint has no name, and the message says so.
    assert (f"{MODELS}:{shop.line_of(MODELS, 'action =')}: drift: unnamed unique constraint on "
            "`audit_event` (action) is in the model but no migration creates it (bind `audit`)") in result.out
    assert 'flask db migrate -m "add unique constraint on audit_event (action)"' in result.out
    assert "2 errors" in result.out
