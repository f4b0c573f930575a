"""The sample app and its migrations run unchanged on every lane's stack (it is what the tests mutate)."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import Project

SCRIPT = '''
import json
from datetime import datetime

import flask_migrate
from sample_app import create_app
from sample_app.extensions import db
from sample_app.models import Post, Tag, User

app = create_app()
with app.app_context():
    flask_migrate.upgrade()
    ada = User(username="ada", email="ada@example.com")
    post = Post(author=ada, title="Hello", slug="hello", published_at=datetime(2024, 1, 1))
    post.tags.append(Tag(name="intro"))
    db.session.add_all([ada, post, Post(author=ada, title="Draft", slug="draft")])
    db.session.commit()
    flask_migrate.downgrade(revision="base")
    flask_migrate.upgrade()
    db.session.add(User(username="bob", email="bob@example.com"))
    db.session.add(Post(author_id=1, title="Again", slug="again", published_at=datetime(2024, 2, 1)))
    db.session.commit()
client = app.test_client()
print(json.dumps({"posts": client.get("/api/posts").get_json(),
                  "tagged": client.get("/api/posts?tag=none").get_json(),
                  "user": client.get("/api/users/bob").get_json(),
                  "missing": client.get("/api/users/nobody").status_code}))
'''


def test_sample_app_upgrades_downgrades_and_serves(project: Project) -> None:
    database = project.path / "app.sqlite"
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=project.path, capture_output=True, text=True,
                          env=project.env({"DATABASE_URL": f"sqlite:///{database}"}), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    served = json.loads(done.stdout.strip().splitlines()[-1])
    assert served["posts"]["total"] == 1
    assert [post["slug"] for post in served["posts"]["posts"]] == ["again"]
    assert served["tagged"] == {"posts": [], "total": 0}
    assert served["user"]["username"] == "bob"
    assert served["missing"] == 404
