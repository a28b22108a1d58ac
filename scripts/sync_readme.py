#!/usr/bin/env python3
"""Copies the README's figures from the docs that hold the full benchmark outputs.

    .venv/bin/python scripts/sync_readme.py           # rewrite the README's figure blocks, say which changed
    .venv/bin/python scripts/sync_readme.py --check   # change nothing; show the differences, exit 1 if any

A block in a doc is marked ``<!-- readme: NAME -->`` … ``<!-- /readme: NAME -->``; the README holds
the same markers where the block goes, and everything between them is the doc's text. So a figure is
written once, next to the output and the command it comes from, and the README cannot drift from it.
tests/test_readme_sync.py runs the check.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
SOURCES = sorted((REPO / "docs").glob("*.md"))
BLOCK = re.compile(r"<!-- readme: (?P<name>[\w-]+) -->\n(?P<body>.*?)<!-- /readme: (?P=name) -->", re.S)


class SyncError(RuntimeError):
    pass


def doc_blocks(sources: list[Path]) -> dict[str, tuple[Path, str]]:
    """Every named block of the docs; a name used twice is an error."""
    found: dict[str, tuple[Path, str]] = {}
    for path in sources:
        for match in BLOCK.finditer(path.read_text(encoding="utf-8")):
            name = match["name"]
            if name in found:
                raise SyncError(f"block {name!r} is in both {found[name][0].name} and {path.name}")
            found[name] = (path, match["body"])
    return found


def synced(readme: str, blocks: dict[str, tuple[Path, str]]) -> str:
    """The README with each of its blocks replaced by the doc's; a block no doc has is an error."""
    missing = [m["name"] for m in BLOCK.finditer(readme) if m["name"] not in blocks]
    if missing:
        raise SyncError(f"README blocks without a source in docs/: {', '.join(missing)}")
    return BLOCK.sub(lambda m: f"<!-- readme: {m['name']} -->\n{blocks[m['name']][1]}<!-- /readme: {m['name']} -->",
                     readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if the README differs")
    args = parser.parse_args(argv)
    try:
        current = README.read_text(encoding="utf-8")
        wanted = synced(current, doc_blocks(SOURCES))
    except SyncError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if wanted == current:
        print("README.md: figures match the docs")
        return 0
    if args.check:
        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), wanted.splitlines(True),
                                                   "README.md", "README.md (from docs/)"))
        print("README.md differs from docs/: run scripts/sync_readme.py", file=sys.stderr)
        return 1
    README.write_text(wanted, encoding="utf-8")
    print("README.md: figure blocks rewritten from docs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
