"""Where codesearch keeps its data: the user cache (XDG), never inside a workspace."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from platformdirs import user_cache_dir


def cache_root() -> Path:
    override = os.environ.get("CODESEARCH_CACHE_DIR")
    return Path(override).expanduser() if override else Path(user_cache_dir("codesearch", appauthor=False))


def workspace_dir(root: Path) -> Path:
    """One folder per workspace root, named so a person can tell which is which."""
    root = Path(root).resolve()
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:12]
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", root.name or "root")[:40]
    return cache_root() / "workspaces" / f"{name}-{digest}"
