"""JSON files kept in the cache directory between runs, trusted only while their hash matches."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any


def read(path: Path) -> Any:
    """What `write` kept in `path`; None if it is missing, unreadable or altered."""
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        text = envelope["content"]
        if hashlib.sha256(text.encode()).hexdigest() != envelope["sha256"]:
            return None
        return json.loads(text)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write(path: Path, content: Any) -> None:
    """Replace `path` with `content` at once (a concurrent run reads the old file or the new one);
    a file that cannot be written only costs the next run speed."""
    text = json.dumps(content)
    with suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, staging = tempfile.mkstemp(prefix=".new-", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                json.dump({"sha256": hashlib.sha256(text.encode()).hexdigest(), "content": text}, file)
            os.replace(staging, path)
        finally:
            with suppress(OSError):
                os.unlink(staging)
