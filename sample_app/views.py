"""A few JSON endpoints."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .extensions import db
from .models import Post, Tag, User

bp = Blueprint("api", __name__, url_prefix="/api")


@bp.get("/posts")
def list_posts() -> Response:
    query = db.select(Post).where(Post.published_at.is_not(None))
    if tag := request.args.get("tag"):
        query = query.where(Post.tags.any(Tag.name == tag))
    query = query.order_by(Post.published_at.desc())
    page = db.paginate(query, per_page=current_app.config["POSTS_PER_PAGE"])
    return jsonify(posts=[post.to_dict() for post in page.items], total=page.total)


@bp.get("/users/<username>")
def show_user(username: str) -> Response:
    user = db.first_or_404(db.select(User).filter_by(username=username, is_active=True))
    return jsonify(user.to_dict())
