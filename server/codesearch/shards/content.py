"""What a repository holds, as one hash: decides whether its shard must be rebuilt.

A clean git checkout is named by its HEAD commit (cheap, and stable across clones); anything else
by a hash over the walked files' paths, sizes and modification times, the same facts the engine's
own sync compares first. The build key covers what else shapes a shard: model, chunker, walk options.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..index.indexer import chunker_fingerprint
from ..index.store import SCHEMA_VERSION
from ..walk.walker import WalkOptions, walk

GIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RepoContent:
    kind: str  # git | files
    digest: str


def repo_content(root: Path, options: WalkOptions) -> RepoContent:
    commit = clean_git_head(root)
    if commit is not None:
        return RepoContent("git", commit)
    return RepoContent("files", walked_files_digest(root, options))


def clean_git_head(root: Path) -> str | None:
    """HEAD's commit if ``root`` is the top of a git work tree with no change, staged or not, and no
    untracked file that is not ignored; else None (no git, not a checkout, or dirty)."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if top is None or Path(top).resolve() != Path(root).resolve():
            return None
        status = _git(root, "status", "--porcelain", "--untracked-files=normal")
        if status is None or status:
            return None
        return _git(root, "rev-parse", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return None


def _git(root: Path, *args: str) -> str | None:
    done = subprocess.run(["git", "--no-optional-locks", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=GIT_TIMEOUT_S, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def walked_files_digest(root: Path, options: WalkOptions) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for source in sorted(walk(root, options).files, key=lambda f: f.path):
        digest.update(f"{source.path}\0{source.size}\0{source.mtime_ns}\n".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def build_key(model_key: str, options: WalkOptions) -> str:
    """Everything besides the repository's content that a shard depends on."""
    parts = [model_key, chunker_fingerprint(), str(SCHEMA_VERSION), str(options.max_file_size),
             *sorted(options.exclude)]
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=12).hexdigest()
