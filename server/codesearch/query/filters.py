"""Which chunks a search may return: languages and a path glob."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class SearchFilters:
    languages: tuple[str, ...] = ()
    path_glob: str | None = None

    @property
    def active(self) -> bool:
        return bool(self.languages or self.path_glob)

    def accepts(self, path: str, language: str) -> bool:
        if self.languages and language not in self.languages:
            return False
        if self.path_glob:
            return glob_match(path, self.path_glob)
        return True


def glob_match(path: str, pattern: str) -> bool:
    """``src/**/*.py``, ``*.ts`` (any depth), ``lib/`` (a folder prefix)."""
    pattern = pattern.strip()
    if pattern.endswith("/"):
        return path.startswith(pattern) or f"/{pattern}" in f"/{path}"
    if "/" not in pattern:
        return fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) or fnmatch.fnmatch(path, pattern)
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    regex = regex.replace(r"\?", "[^/]")
    return re.fullmatch(regex, path) is not None or path.startswith(pattern.rstrip("/") + "/")


def under_folder(prefix: str, path_glob: str | None) -> str:
    """A path glob anchored below ``prefix`` (a folder relative to the workspace folder)."""
    if not path_glob:
        return f"{prefix}/**"
    glob = path_glob.strip().lstrip("/")
    if glob.endswith("/"):
        glob += "**"
    return f"{prefix}/{glob}" if "/" in glob else f"{prefix}/**/{glob}"
