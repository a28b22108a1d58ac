"""Tokens an agent reads per question: codesearch-mcp's `search` against `rg` plus reading files.

    python bench/mcp_tokens.py --repos click cobra mocha       # the repository benchmark's prepared copies

For every query of the repository benchmark (bench/repos.py: doc-comment questions whose comment
was deleted from the indexed copy, identifiers, "where is X implemented"), on the same files:

- **codesearch-mcp**: the real server (``python -m codesearch.mcp``, real default model, stdio, the
  MCP SDK's client) answers ``search``; the tokens are those of the text it returns; the target is
  found when a result it shows overlaps the target's lines (or is the target file).
- **rg -n**: ``rg -n -i -F`` for the query's keywords (identifier queries: the name itself, the last
  part of ``Class.method``; other queries: words of 4+ letters that are not stop words), the output
  read from the top; found when a line shown lies in the target.
- **rg + read**: ``rg -l`` for the same keywords, then the matching files read whole, the files with
  the most distinct keywords first (then the most matching lines), the last one cut at the budget;
  found when the target's first line has been read.

Tokens are estimated as characters / 4 for every method (codesearch.mcp.render.estimate_tokens).
"Within budget" reads each answer only up to ``--budget`` tokens (2,000 by default).

The corpus comes from ``bench/repos.py build`` (``~/.cache/codesearch-bench/repos/<name>/tree`` and
``queries.jsonl``); only those two files are read here. The server's index goes to its own cache
(``--cache``), whose ``models`` folder links to the exported default model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codesearch.mcp.render import CHARS_PER_TOKEN, estimate_tokens
from common import REPO, load_average, machine_info, median, table
from mcp import ClientSession, StdioServerParameters, stdio_client

BENCH_REPOS = Path("~/.cache/codesearch-bench/repos").expanduser()
DEFAULT_CACHE = Path("~/.cache/codesearch-bench/mcp-tokens").expanduser()
DEFAULT_MODELS = Path("~/.cache/codesearch-tests/models").expanduser()
RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("doc", "ident", "file")
_STOP_WORDS = """
a about above after again all also an and any are as at be because been before being below between both but by
can could did do does doing down during each few for from further had has have having here how if in into is it
its itself just more most no nor not of off on once only or other our out over own same should so some such than
that the their them then there these they this those through to too under until up very was we were what when
where which while who whom why will with would you your given returns return value values used uses using use
implemented implementation class method function module file object whether otherwise called calls call new
"""
STOP_WORDS = frozenset(_STOP_WORDS.split())
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Query:
    id: str
    kind: str
    text: str
    path: str
    start: int  # 0, 0: the file alone answers
    end: int


def load_queries(repo: Path) -> list[Query]:
    out = []
    for line in (repo / "queries.jsonl").read_text().splitlines():
        q = json.loads(line)
        out.append(Query(q["id"], q["kind"], q["text"], q["path"], q["start"], q["end"]))
    return out


def provenance(repo: Path) -> dict[str, Any]:
    """Which build of the repository benchmark was measured: it is rebuilt as its queries improve."""
    queries = (repo / "queries.jsonl").read_bytes()
    info = json.loads((repo / "info.json").read_text()) if (repo / "info.json").exists() else {}
    return {"queries_sha256": hashlib.sha256(queries).hexdigest()[:16],
            "built": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime((repo / "queries.jsonl").stat().st_mtime)),
            "version": info.get("version"), "files": info.get("files"), "chunks": info.get("chunks")}


def relevant(path: str, start: int, end: int, q: Query) -> bool:
    """The repository benchmark's rule: the target's file and, for definitions, overlapping lines."""
    if path != q.path:
        return False
    return (q.start == 0 and q.end == 0) or (start <= q.end and end >= q.start)


@dataclass
class Row:
    method: str
    tokens: list[int] = field(default_factory=list)  # per query, the whole answer
    found: dict[str, list[bool]] = field(default_factory=lambda: defaultdict(list))  # kind → within budget
    by_repo: dict[str, list[tuple[int, bool]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, repo: str, kind: str, tokens: int, found: bool) -> None:
        self.tokens.append(tokens)
        self.found[kind].append(found)
        self.by_repo[repo].append((tokens, found))


# codesearch-mcp --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Variant:
    name: str
    args: dict[str, Any]


VARIANTS = (Variant("codesearch-mcp search (k=10, 8 lines)", {"k": 10}),
            Variant("codesearch-mcp search (k=5, 4 lines)", {"k": 5, "snippet_lines": 4}))


async def wait_ready(session: ClientSession, name: str) -> dict[str, Any]:
    last = 0.0
    while True:
        result = await session.call_tool("index_status", {})
        root = (result.structured_content or {})["roots"][0]
        if root["state"] == "ready" and root["embedded_percent"] == 100:
            return dict(root)
        if root["state"] == "error":
            raise RuntimeError(f"{name}: {root['message']}")
        if time.monotonic() - last > 30:
            last = time.monotonic()
            print(f"  {name}: {root['state']} {root['message']}: {root['embedded']}/{root['chunks']} chunks embedded",
                  flush=True)
        await anyio.sleep(1.0)


async def run_codesearch(tree: Path, queries: Sequence[Query], budget: int, env: dict[str, str],
                         rows: dict[str, Row]) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, env=env, args=[
        "-m", "codesearch.mcp", "--path", str(tree), "--device", "cpu", "--no-watch", "--log-level", "WARNING"])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        started = time.monotonic()
        status = await wait_ready(session, tree.parent.name)
        status["wait_s"] = round(time.monotonic() - started, 1)
        for variant in VARIANTS:
            row = rows.setdefault(variant.name, Row(variant.name))
            for q in queries:
                result = await session.call_tool("search", {"query": q.text, "max_tokens": budget, **variant.args})
                if result.is_error or result.structured_content is None:
                    raise RuntimeError(f"{q.id}: {result.content}")
                data = result.structured_content
                text = "\n".join(getattr(b, "text", "") for b in result.content)
                found = any(relevant(h["path"], h["start_line"], h["end_line"], q) for h in data["results"])
                row.add(tree.parent.name, q.kind, estimate_tokens(text), found)
        return status


# rg ---------------------------------------------------------------------------------------------------
def keywords(q: Query) -> list[str]:
    if q.kind == "ident":
        return [re.split(r"::|#|\.", q.text)[-1]]
    words = [w for w in WORD.findall(q.text) if len(w) >= 4 and w.lower() not in STOP_WORDS]
    return list(dict.fromkeys(words))[:8]


def rg(tree: Path, *args: str) -> str:
    out = subprocess.run(["rg", "--no-messages", "--sort", "path", *args], cwd=tree, capture_output=True, text=True)
    return out.stdout


def rg_lines(tree: Path, q: Query, words: list[str], budget: int, row: Row) -> None:
    out = rg(tree, "-n", "-i", "-F", *[a for w in words for a in ("-e", w)]) if words else ""
    seen = 0
    found = False
    for line in out.splitlines():
        seen += len(line) + 1
        if seen > budget * CHARS_PER_TOKEN:
            break
        path, _, rest = line.partition(":")
        number = rest.partition(":")[0]
        if number.isdigit() and relevant(path, int(number), int(number), q):
            found = True
            break
    row.add(tree.parent.name, q.kind, estimate_tokens(out), found)


def ranked_files(tree: Path, words: list[str]) -> list[str]:
    """Files matching any keyword: most distinct keywords first, then most matching lines, then path."""
    distinct: dict[str, int] = defaultdict(int)
    lines: dict[str, int] = defaultdict(int)
    for word in words:
        for entry in rg(tree, "-c", "-i", "-F", "-e", word).splitlines():
            path, _, count = entry.rpartition(":")
            distinct[path] += 1
            lines[path] += int(count)
    return sorted(distinct, key=lambda p: (-distinct[p], -lines[p], p))


def rg_read(tree: Path, q: Query, words: list[str], budget: int, row: Row) -> None:
    files = ranked_files(tree, words) if words else []
    listing = "".join(f"{p}\n" for p in files)
    texts = [(p, (tree / p).read_text(encoding="utf-8", errors="replace")) for p in files]
    room = budget * CHARS_PER_TOKEN - len(listing)
    found = False
    for path, text in texts:
        if room <= 0:
            break
        read = text[:room]
        room -= len(text)
        if path == q.path:
            first = q.start or 1
            found = read.count("\n") + (1 if read and not read.endswith("\n") else 0) >= first
            break
    row.add(tree.parent.name, q.kind, estimate_tokens(listing + "".join(t for _, t in texts)), found)


# the run ----------------------------------------------------------------------------------------------
def server_env(cache: Path, models: Path) -> dict[str, str]:
    cache.mkdir(parents=True, exist_ok=True)
    link = cache / "models"
    if not link.exists():
        link.symlink_to(models, target_is_directory=True)
    env = dict(os.environ)
    env["CODESEARCH_CACHE_DIR"] = str(cache)
    env.pop("CODESEARCH_ENCODER_FACTORY", None)
    return env


def summarize(rows: dict[str, Row], budget: int) -> tuple[str, list[dict[str, Any]]]:
    out = []
    table_rows = []
    for row in rows.values():
        per_kind = {kind: 100.0 * sum(row.found[kind]) / len(row.found[kind]) for kind in KINDS if row.found[kind]}
        every = [f for kind in KINDS for f in row.found[kind]]
        overall = 100.0 * sum(every) / len(every)
        mean = sum(row.tokens) / len(row.tokens)
        out.append({"method": row.method, "queries": len(every), "median_tokens": median(row.tokens),
                    "mean_tokens": round(mean, 1), "recall_within_budget": per_kind, "recall_all": overall})
        table_rows.append([row.method, f"{median(row.tokens):,.0f}", f"{mean:,.0f}",
                           *(f"{per_kind.get(k, 0):.0f}%" for k in KINDS), f"{overall:.0f}%"])
    headers = ["method", "median tokens / query", "mean tokens / query",
               *(f"found within {budget:,}: {k}" for k in KINDS), "all"]
    return table(headers, table_rows) + "\n\n" + per_repo_table(rows, budget), out


def per_repo_table(rows: dict[str, Row], budget: int) -> str:
    """Median tokens and share found within the budget, per repository."""
    repos = list(next(iter(rows.values())).by_repo)
    cells = []
    for row in rows.values():
        cell = [row.method]
        for repo in repos:
            pairs = row.by_repo[repo]
            share = 100.0 * sum(f for _, f in pairs) / len(pairs)
            cell.append(f"{median([t for t, _ in pairs]):,.0f} / {share:.0f}%")
        cells.append(cell)
    return table(["method", *(f"{r}: median tokens / found" for r in repos)], cells)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", nargs="+", default=["click", "cobra", "mocha"])
    parser.add_argument("--bench-repos", type=Path, default=BENCH_REPOS, help="bench/repos.py's cache")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="the server's index cache")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="where the exported default model is")
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS / "mcp_tokens.json")
    args = parser.parse_args(argv)

    env = server_env(args.cache, args.models)
    rows: dict[str, Row] = {}
    statuses: dict[str, Any] = {}
    for name in args.repos:
        base = args.bench_repos / name
        queries = load_queries(base)
        print(f"{name}: {len(queries)} queries", flush=True)
        statuses[name] = {**anyio.run(run_codesearch, base / "tree", queries, args.budget, env, rows),
                          "benchmark": provenance(base)}
        lines, read = rows.setdefault("rg -n", Row("rg -n")), rows.setdefault("rg + read", Row("rg + read"))
        for q in queries:
            words = keywords(q)
            rg_lines(base / "tree", q, words, args.budget, lines)
            rg_read(base / "tree", q, words, args.budget, read)
    markdown, summary = summarize(rows, args.budget)
    print(markdown)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"repos": args.repos, "budget": args.budget, "summary": summary, "indexes": statuses,
              "machine": machine_info(), "load_average": load_average(),
              "command": "python bench/mcp_tokens.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "rows": {name: {"tokens": row.tokens, "found": dict(row.found), "by_repo": dict(row.by_repo)}
                       for name, row in rows.items()}}
    args.out.write_text(json.dumps(report, indent=1))
    print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
