from __future__ import annotations

from ..extensions import db

post_tags = db.Table(
    "post_tags",
    db.Column(
        "post_id", db.Integer, db.ForeignKey("post.id", ondelete="CASCADE"), primary_key=True
    ),
    db.Column("tag_id", db.Integer, db.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
)


class Tag(db.Model):
    __tablename__ = "tag"

    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(50), nullable=False, unique=True)

    def __repr__(self) -> str:
        return f"<Tag {self.name!r}>"


class Post(db.Model):
    __tablename__ = "post"
    __table_args__ = (db.UniqueConstraint("author_id", "slug", name="uq_post_author_id_slug"),)

    id = db.Column(db.Integer, primary_key=True)
    author_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False, index=True)
    title = db.Column(db.String(200), nullable=False)
    slug = db.Column(db.String(200), nullable=False)
    body = db.Column(db.Text, nullable=False, default="")
    published_at = db.Column(db.DateTime, index=True)
    view_count = db.Column(db.Integer, nullable=False, server_default="0")
    created_at = db.Column(db.DateTime, nullable=False, server_default=db.func.now())

    author = db.relationship("User", back_populates="posts")
    tags = db.relationship("Tag", secondary=post_tags, backref=db.backref("posts", lazy="dynamic"))
    comments = db.relationship(
        "Comment",
        back_populates="post",
        cascade="all, delete-orphan",
        order_by="Comment.created_at",
    )

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "slug": self.slug,
            "author": self.author.username,
            "tags": sorted(tag.name for tag in self.tags),
            "view_count": self.view_count,
            "published_at": self.published_at.isoformat() if self.published_at else None,
        }

    def __repr__(self) -> str:
        return f"<Post {self.slug!r}>"


class Comment(db.Model):
    __tablename__ = "comment"
    __table_args__ = (db.Index("ix_comment_post_id_created_at", "post_id", "created_at"),)

    id = db.Column(db.Integer, primary_key=True)
    post_id = db.Column(db.Integer, db.ForeignKey("post.id", ondelete="CASCADE"), nullable=False)
    author_id = db.Column(db.Integer, db.ForeignKey("user.id"), nullable=False, index=True)
    body = db.Column(db.Text, nullable=False)
    is_approved = db.Column(db.Boolean, nullable=False, default=False)
    created_at = db.Column(db.DateTime, nullable=False, server_default=db.func.now())

    post = db.relationship("Post", back_populates="comments")
    author = db.relationship("User", back_populates="comments")

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "author": self.author.username,
            "body": self.body,
            "created_at": self.created_at.isoformat() if self.created_at else None,
        }

    def __repr__(self) -> str:
        return f"<Comment {self.id} on post {self.post_id}>"
