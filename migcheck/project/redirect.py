"""Scratch URLs from the moment an app's config holds a database URL, whoever reads it and when.

Flask builds `app.config` in `Flask.make_config`. During a run, the config it returns is turned into
a subclass of its own class whose every write path (`config[...] =`, `update`, `setdefault`, `|=`,
and so `from_object`, `from_mapping`, `from_pyfile`, `from_envvar`, `from_prefixed_env`, which end
in those) stores a scratch URL for SQLALCHEMY_DATABASE_URI and for each entry of SQLALCHEMY_BINDS.
So a factory that reads the URL and connects, creates the database or reads a settings row before
`db.init_app(app)` lands in a scratch database too. SQLALCHEMY_BINDS is stored as a dict that
redirects its own writes, for apps that add a bind to it later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Config, Flask

URI = "SQLALCHEMY_DATABASE_URI"
BINDS = "SQLALCHEMY_BINDS"

#: (bind key or None for the default database, the configured URL) -> the scratch URL to store
Redirect = Callable[[Any, Any], str]


class _Rewriting(dict[Any, Any]):
    """A dict whose every write goes through `_rewrite(key, value)`."""

    def _rewrite(self, key: Any, value: Any) -> Any:
        raise NotImplementedError

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, self._rewrite(key, value))

    def update(self, *args: Any, **kwargs: Any) -> None:  # dict.update skips __setitem__
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def __ior__(self, other: Any) -> _Rewriting:  # type: ignore[misc]
        self.update(other)
        return self


def _binds_class(redirect: Redirect) -> type[dict[Any, Any]]:
    class ScratchBinds(_Rewriting):
        """SQLALCHEMY_BINDS whose URLs are scratch URLs (a bind's options do not fit scratch)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__()
            self.update(*args, **kwargs)

        def _rewrite(self, key: Any, value: Any) -> Any:
            if isinstance(value, Mapping):  # Flask-SQLAlchemy 3: the engine's options, URL included
                return {**value, "url": redirect(key, value["url"])} if value.get("url") else value
            return value if value is None else redirect(key, value)

    return ScratchBinds


def _config_mixin(redirect: Redirect) -> type[_Rewriting]:
    binds_class = _binds_class(redirect)

    class ScratchConfig(_Rewriting):
        def _rewrite(self, key: Any, value: Any) -> Any:
            if value is None:
                return value
            if key == URI:
                return redirect(None, value)
            if key == BINDS and not isinstance(value, binds_class):
                return binds_class(value)
            return value

    return ScratchConfig


@contextmanager
def redirected_configs(redirect: Redirect) -> Iterator[None]:
    """Every Flask app created in the block stores scratch URLs in its config."""
    mixin = _config_mixin(redirect)
    classes: dict[type[Config], type[Config]] = {}
    had_own = "make_config" in Flask.__dict__
    original = Flask.make_config

    def make_config(self: Flask, instance_relative: bool = False) -> Config:
        config = original(self, instance_relative)
        base = type(config)  # the app's own config class (Flask.config_class), kept for its methods
        if base not in classes:
            classes[base] = type(base.__name__, (mixin, base), {})
        try:
            config.__class__ = classes[base]
        except TypeError:  # a config class with __slots__: init_app-time redirection still holds
            return config
        for key in (URI, BINDS):  # defaults given to the constructor did not pass __setitem__
            if key in config:
                config[key] = dict.__getitem__(config, key)
        return config

    Flask.make_config = make_config  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        if had_own:
            Flask.make_config = original  # type: ignore[method-assign]
        else:
            del Flask.make_config
