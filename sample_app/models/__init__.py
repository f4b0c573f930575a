"""All models, imported here so that their tables register on ``db.metadata``."""

from .blog import Comment, Post, Tag, post_tags
from .user import User

__all__ = ["Comment", "Post", "Tag", "User", "post_tags"]
