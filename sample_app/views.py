"""A few JSON endpoints.

Spelled so that they run on every stack migcheck supports (Flask 1.1 to 3, Flask-SQLAlchemy 2.5
and 3, SQLAlchemy 1.3 to 2): `route(methods=...)`, the model's `query` and `isnot`.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .models import Post, Tag, User

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.route("/posts", methods=["GET"])
def list_posts() -> Response:
    query = Post.query.filter(Post.published_at.isnot(None))
    if tag := request.args.get("tag"):
        query = query.filter(Post.tags.any(Tag.name == tag))
    query = query.order_by(Post.published_at.desc())
    page = query.paginate(per_page=current_app.config["POSTS_PER_PAGE"])
    return jsonify(posts=[post.to_dict() for post in page.items], total=page.total)


@bp.route("/users/<username>", methods=["GET"])
def show_user(username: str) -> Response:
    user = User.query.filter_by(username=username, is_active=True).first_or_404()
    return jsonify(user.to_dict())
