"""Repository benchmark: whole real repositories as the corpus, queries of three kinds, scored through
the engine facade only.

    python bench/repos.py build                  # fetch the pinned packages, write the indexed copies
                                                 # and the queries, build the lexical index
    python bench/repos.py eval --split dev       # embed (once; vectors stay cached) and score
    python bench/repos.py probe rich Console "rich.table.Table"   # where single queries land

The pins live in bench/repos.toml, the corpus under ``--cache`` (default
``~/.cache/codesearch-bench/repos``); results go to bench/results/ (git-ignored). Other tools reuse
the corpus through :func:`load_benchmark`.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codesearch.engine import Engine, EngineConfig
from common import load_average, machine_info, percentile, table
from repo_corpus import DEFAULT_CACHE, BuildError, RepoPin, load_manifest, prepare, read_queries, save_queries
from repo_defs import language_of, parse_file
from repo_metrics import Outcome, Target, first_relevant, starts_at_definition, summarize
from repo_queries import Query

RESULTS = Path(__file__).resolve().parent / "results"
KINDS = ("doc", "ident", "file")
MODES = ("fused", "lexical", "dense")
SEARCH_LIMIT = 100
LATENCY_LIMIT = 10


@dataclass(frozen=True)
class Repo:
    """One repository of the benchmark, ready to index: ``root`` is the indexed copy."""

    name: str
    language: str
    split: str
    registry: str
    package: str
    version: str
    licence: str
    root: Path
    index_dir: Path
    queries: tuple[Query, ...]


def load_benchmark(cache: Path = DEFAULT_CACHE, split: str = "all", only: Sequence[str] = ()) -> list[Repo]:
    """The built repositories of ``split`` (dev, test or all); ``build`` must have run first."""
    manifest = load_manifest()
    repos: list[Repo] = []
    for pin in manifest.repos:
        if (split != "all" and pin.split != split) or (only and pin.name not in only):
            continue
        base = Path(cache).expanduser() / pin.name
        if not (base / "queries.jsonl").exists():
            raise BuildError(f"{pin.name} is not built in {cache}: run `python bench/repos.py build` first")
        repos.append(Repo(pin.name, pin.language, pin.split, pin.registry, pin.package, pin.version, pin.licence,
                          base / "tree", base / "index", tuple(read_queries(base / "queries.jsonl"))))
    if only:  # in the order asked for
        repos.sort(key=lambda r: list(only).index(r.name))
    return repos


def target_of(q: Query) -> Target:
    return Target(q.path, q.start, q.end)


# -- build --------------------------------------------------------------------------------------

def build_repo(pin: RepoPin, cache: Path, seed: int) -> dict[str, Any]:
    started = time.perf_counter()
    queries, files, changed = prepare(pin, cache, seed)
    base = cache / pin.name
    if changed or not (base / "index" / "index.db").exists():  # else the index is current: leave it be
        engine = Engine(base / "tree", EngineConfig(), index_dir=base / "index")
        try:
            engine.acquire_writer()
            _reread(engine, base / "tree", changed)
            engine.sync()
        finally:
            engine.close()
    indexed, chunks = _index_contents(base / "index")
    kept = [q for q in queries if q.path in indexed]
    save_queries(base / "queries.jsonl", kept)
    info = {**asdict(pin), "files": len(indexed), "chunks": chunks, "source_files": len(files),
            "queries": {k: sum(1 for q in kept if q.kind == k) for k in KINDS},
            "dropped_unindexed": len(queries) - len(kept), "build_s": round(time.perf_counter() - started, 1)}
    (base / "info.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def _reread(engine: Engine, tree: Path, changed: list[str]) -> None:
    """Make the index read files whose text changed since the last build even where size and mtime
    are the same (the mtimes are the originals): take them out of the index once, then back in."""
    if not changed or not (engine.dir / "index.db").exists():
        return
    with tempfile.TemporaryDirectory() as aside:
        moved: list[tuple[str, Path]] = []
        for rel in changed:
            if (tree / rel).exists():
                target = Path(aside) / str(len(moved))
                shutil.move(tree / rel, target)
                moved.append((rel, target))
        engine.update_paths(changed, embed=False)
        for rel, target in moved:
            shutil.move(target, tree / rel)
    engine.update_paths(changed, embed=False)


def _index_contents(index_dir: Path) -> tuple[set[str], int]:
    """(indexed paths, chunk count), read straight from the index (no writer lock needed)."""
    db = sqlite3.connect(f"file:{index_dir / 'index.db'}?mode=ro", uri=True)
    try:
        return ({row[0] for row in db.execute("SELECT path FROM files")},
                db.execute("SELECT count(*) FROM chunks").fetchone()[0])
    finally:
        db.close()


def cmd_build(args: argparse.Namespace) -> int:
    manifest = load_manifest()
    cache = Path(args.cache).expanduser()
    rows = []
    started = time.perf_counter()
    for pin in manifest.repos:
        if args.only and pin.name not in args.only:
            continue
        print(f"building {pin.name} ({pin.registry} {pin.package} {pin.version})", file=sys.stderr, flush=True)
        info = build_repo(pin, cache, args.seed if args.seed is not None else manifest.seed)
        q = info["queries"]
        rows.append([pin.name, pin.language, pin.split, f"{pin.registry}: {pin.package} {pin.version}",
                     pin.licence, info["files"], info["chunks"], q["doc"], q["ident"], q["file"],
                     f"{info['build_s']:.1f}"])
    print(table(["repository", "language", "split", "pin", "licence", "files", "chunks", "doc", "ident", "file",
                 "build s"], rows))
    print(f"\nbuilt {len(rows)} repositories in {time.perf_counter() - started:.0f} s into {cache}")
    return 0


# -- eval ---------------------------------------------------------------------------------------

def run_queries(engine: Engine, queries: Sequence[Query], mode: str, limit: int = SEARCH_LIMIT) -> list[Outcome]:
    outcomes = []
    for q in queries:
        hits = engine.search(q.text, limit=limit, mode=mode).hits
        rank, start = first_relevant(((h.path, h.start_line, h.end_line) for h in hits), target_of(q))
        outcomes.append(Outcome(q.id, rank, start))
    return outcomes


def time_queries(engine: Engine, queries: Sequence[Query], limit: int = LATENCY_LIMIT) -> list[float]:
    """Milliseconds per fused search, each query once, after one warm-up search."""
    if queries:
        engine.search(queries[0].text, limit=limit)
    timings = []
    for q in queries:
        t = time.perf_counter()
        engine.search(q.text, limit=limit)
        timings.append((time.perf_counter() - t) * 1000)
    return timings


def embedding_order(db: sqlite3.Connection, model_key: str) -> list[str]:
    """The engine's embedding order (Store.pending_embeddings): chunk texts of the most recently
    modified files first; ties (equal mtimes, as in most release tarballs) by embed hash."""
    rows = db.execute(
        "SELECT c.embed_hash, max(c.mtime_ns) AS m FROM chunks c JOIN vectors v "
        "ON v.embed_hash=c.embed_hash AND v.model_key=? GROUP BY c.embed_hash ORDER BY m DESC, c.embed_hash",
        (model_key,)).fetchall()
    return [r[0] for r in rows]


def partial_index(index_dir: Path, model_key: str, fraction: float, dest: Path) -> tuple[int, int]:
    """A copy of a fully embedded index that keeps the vectors of only the first ``fraction`` of the
    chunk texts in embedding order, as if indexing had stopped there. Returns (kept, total)."""
    dest.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{index_dir / 'index.db'}?mode=ro", uri=True)
    db = sqlite3.connect(str(dest / "index.db"), isolation_level=None)
    try:
        source.backup(db)  # a consistent copy even while another process writes
        source.close()
        order = embedding_order(db, model_key)
        keep = order[: math.floor(fraction * len(order) + 1e-9)]
        db.execute("CREATE TEMP TABLE keep (h TEXT PRIMARY KEY)")
        db.executemany("INSERT INTO keep VALUES (?)", ((h,) for h in keep))
        db.execute("DELETE FROM vectors WHERE model_key=? AND embed_hash NOT IN (SELECT h FROM keep)", (model_key,))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return len(keep), len(order)


@dataclass
class RepoRun:
    repo: Repo
    info: dict[str, Any]
    outcomes: dict[str, list[Outcome]]  # run name (fused, lexical, dense, fused@10%) -> outcomes
    latency_ms: list[float]


def evaluate_repo(repo: Repo, config: EngineConfig, modes: Sequence[str], fractions: Sequence[float],
                  log: Callable[[str], None]) -> RepoRun:
    """Every query in every run. Embeds what is missing first unless only keyword runs (lexical,
    fused at 0 %) are asked for; those then read the index as ``build`` left it."""
    needs_vectors = any(m != "lexical" for m in modes) or any(f > 0 for f in fractions)
    engine = Engine(repo.root, config, index_dir=repo.index_dir)
    outcomes: dict[str, list[Outcome]] = {}
    latency: list[float] = []
    try:
        info = _embed(engine, repo.name, log) if needs_vectors else {}
        status = engine.status()
        info.update(files=status.files, chunks=status.chunks, embedded=status.embedded)
        if fractions and "model_key" not in info:
            info.update(model=engine.config.model or "default", model_key=engine.encoder.model_key)
        for mode in modes:
            outcomes[mode] = run_queries(engine, repo.queries, mode)
        if "fused" in modes:
            latency = time_queries(engine, repo.queries)
    finally:
        engine.close()
    for fraction in fractions:
        outcomes[fraction_run(fraction)] = _partial_run(repo, config, info["model_key"], fraction, info)
    return RepoRun(repo, info, outcomes, latency)


def _embed(engine: Engine, name: str, log: Callable[[str], None]) -> dict[str, Any]:
    engine.acquire_writer()
    engine.sync()
    started = time.perf_counter()
    report = engine.embed(progress=_progress_logger(name, log))
    status = engine.status()
    return {"model": status.model, "model_key": status.model_key, "embedded_now": report.embedded,
            "embed_s": round(time.perf_counter() - started, 1)}


def fraction_run(fraction: float) -> str:
    return f"fused@{fraction:.0%}"


def _partial_run(repo: Repo, config: EngineConfig, model_key: str, fraction: float,
                 info: dict[str, Any]) -> list[Outcome]:
    with tempfile.TemporaryDirectory(dir=repo.index_dir.parent) as folder:
        kept, total = partial_index(repo.index_dir, model_key, fraction, Path(folder))
        info[f"kept@{fraction:.0%}"] = [kept, total]
        engine = Engine(repo.root, config, index_dir=Path(folder))
        try:
            return run_queries(engine, repo.queries, "fused")
        finally:
            engine.close()


def _progress_logger(name: str, log: Callable[[str], None]) -> Callable[[Any], None]:
    last = [0.0]

    def report(p: Any) -> None:
        now = time.monotonic()
        if p.phase == "embed" and now - last[0] > 30:
            last[0] = now
            log(f"  {name}: embedded {p.embedded}/{p.to_embed} ({p.rate:.1f}/s)")
    return report


def cmd_embed(args: argparse.Namespace) -> int:
    """Only sync and embed (the slow part on a CPU), so that ``eval`` later only queries."""
    config = EngineConfig(model=args.model)
    for repo in load_benchmark(Path(args.cache), args.split, args.only):
        started = time.perf_counter()
        engine = Engine(repo.root, config, index_dir=repo.index_dir)
        try:
            engine.acquire_writer()
            engine.sync()
            report = engine.embed(progress=_progress_logger(repo.name, lambda m: print(m, file=sys.stderr, flush=True)))
        finally:
            engine.close()
        print(f"{repo.name}: embedded {report.embedded} chunk texts in {time.perf_counter() - started:.0f} s",
              flush=True)
    return 0


# -- tables -------------------------------------------------------------------------------------

def select(run: RepoRun, name: str, kind: str | None = None, subkind: str | None = None) -> list[Outcome]:
    wanted = {q.id for q in run.repo.queries if (kind is None or q.kind == kind)
              and (subkind is None or q.subkind == subkind)}
    return [o for o in run.outcomes.get(name, []) if o.query_id in wanted]


def run_names(runs: Sequence[RepoRun]) -> list[str]:
    names: list[str] = []
    for r in runs:
        names += [n for n in r.outcomes if n not in names]
    return names


def split_table(runs: Sequence[RepoRun], metric: str) -> str:
    names = run_names(runs)
    rows = []
    for split in ("dev", "test"):
        chosen = [r for r in runs if r.repo.split == split]
        if not chosen:
            continue
        for kind in (*KINDS, None):
            n = sum(len(select(r, names[0], kind)) for r in chosen)
            row: list[Any] = [split, kind or "all", n]
            for name in names:
                row.append(getattr(summarize([o for r in chosen for o in select(r, name, kind)]), metric))
            rows.append(row)
    return table(["split", "kind", "queries", *names], rows)


def repo_table(runs: Sequence[RepoRun]) -> str:
    names = run_names(runs)
    rows = []
    for r in runs:
        row: list[Any] = [r.repo.name, r.repo.language, r.repo.split, r.info.get("chunks"), len(r.repo.queries)]
        row += [summarize(select(r, name)).ndcg10 for name in names]
        row += [f"{percentile(r.latency_ms, 50):.1f} / {percentile(r.latency_ms, 99):.1f}" if r.latency_ms else None]
        rows.append(row)
    return table(["repository", "language", "split", "chunks", "queries", *names, "fused ms p50 / p99"], rows)


def ident_table(runs: Sequence[RepoRun]) -> str:
    """Share of identifier queries answered at rank 1, per sub-kind, and how often the first right
    hit reports the definition's first line (doc and identifier queries)."""
    names = [n for n in run_names(runs) if n in MODES]
    if not names:
        return "(no plain mode was run)"
    rows = []
    for split in ("dev", "test"):
        chosen = [r for r in runs if r.repo.split == split]
        for subkind in ("name", "qualified", "class", "lower", None):
            n = sum(len(select(r, names[0], "ident", subkind)) for r in chosen)
            if chosen and n:
                rows.append([split, subkind or "all identifiers", n,
                             *[summarize([o for r in chosen for o in select(r, m, "ident", subkind)]).top1
                               for m in names]])
    return table(["split", "identifier query", "queries", *[f"{m} @1" for m in names]], rows)


def definition_line_table(runs: Sequence[RepoRun], name: str = "fused") -> str:
    rows = []
    for split in ("dev", "test"):
        for kind in ("doc", "ident"):
            found = at_def = 0
            for r in (r for r in runs if r.repo.split == split):
                by_id = {q.id: q for q in r.repo.queries}
                for o in select(r, name, kind):
                    if o.rank is not None and o.rank <= 10:
                        found += 1
                        q = by_id[o.query_id]
                        at_def += starts_at_definition(o, q.def_start, q.def_line)
            if found:
                rows.append([split, kind, found, at_def / found])
    return table(["split", "kind", f"right hit in {name} top 10", "its line is the definition's first"], rows)


# -- eval command -------------------------------------------------------------------------------

def cmd_eval(args: argparse.Namespace) -> int:
    repos = load_benchmark(Path(args.cache), args.split, args.only)
    config = EngineConfig(model=args.model)
    fractions = [float(x) for x in args.fractions.split(",") if x.strip()] if args.fractions else []
    modes = [m for m in args.modes.split(",") if m]
    started = time.perf_counter()
    runs = []
    for repo in repos:
        print(f"evaluating {repo.name} ({len(repo.queries)} queries)", file=sys.stderr, flush=True)
        t = time.perf_counter()
        runs.append(evaluate_repo(repo, config, modes, fractions, lambda m: print(m, file=sys.stderr, flush=True)))
        print(f"  {repo.name}: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started
    report = _report(runs, args, elapsed)
    print(report)
    out = Path(args.json) if args.json else RESULTS / f"repos-{args.split}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_json(runs, args, elapsed), indent=1), encoding="utf-8")
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


def _report(runs: Sequence[RepoRun], args: argparse.Namespace, elapsed: float) -> str:
    model = runs[0].info.get("model") if runs else ""
    parts = [f"model: {model}; split: {args.split}; {sum(len(r.repo.queries) for r in runs)} queries over "
             f"{sum(r.info.get('chunks', 0) for r in runs)} chunks in {len(runs)} repositories; "
             f"eval wall time {elapsed:.0f} s",
             "\nNDCG@10\n", split_table(runs, "ndcg10"), "\nMRR@100\n", split_table(runs, "mrr"),
             "\nNDCG@10 per repository\n", repo_table(runs), "\nIdentifier queries at rank 1\n", ident_table(runs)]
    if "fused" in run_names(runs):
        parts += ["\nWhere the first right hit starts\n", definition_line_table(runs)]
    return "\n".join(parts)


def _json(runs: Sequence[RepoRun], args: argparse.Namespace, elapsed: float) -> dict[str, Any]:
    return {
        "command": " ".join(sys.argv), "machine": machine_info(), "load_average": load_average(),
        "eval_s": round(elapsed, 1),
        "repos": {r.repo.name: {"language": r.repo.language, "split": r.repo.split, **r.info,
                                "queries": len(r.repo.queries),
                                "latency_ms": {"p50": percentile(r.latency_ms, 50),
                                               "p99": percentile(r.latency_ms, 99)}} for r in runs},
        "summary": {split: {kind or "all": {name: asdict(summarize(
            [o for r in runs if r.repo.split == split for o in select(r, name, kind)]))
            for name in run_names(runs)} for kind in (*KINDS, None)} for split in ("dev", "test")},
        "outcomes": {r.repo.name: {name: [[o.query_id, o.rank, o.hit_start] for o in outs]
                                   for name, outs in r.outcomes.items()} for r in runs},
    }


# -- probe --------------------------------------------------------------------------------------

def find_definition(repo: Repo, name: str) -> tuple[str, int, int, int] | None:
    """(path, start, name line, header end) of the class or function ``name`` (``pkg.mod.Name`` also
    picks the module) in the indexed copy; classes win over functions."""
    parts = name.split(".")
    module = "/".join(parts[:-1])
    found = []
    for path in sorted(p for p in repo.root.rglob("*") if p.is_file()):
        rel = path.relative_to(repo.root).as_posix()
        language = language_of(rel, repo.language)
        if language is None or (module and not rel.endswith(f"{module}.py")):
            continue
        facts = parse_file(rel, path.read_text(encoding="utf-8", errors="replace"), language)
        found += [(d.kind != "class", "test" in rel, rel, d) for d in facts.definitions if d.qualified == parts[-1]
                  or (d.name == parts[-1] and not d.container)]
    if not found:
        return None
    *_, rel, d = min(found, key=lambda f: f[:3])
    return rel, d.start, d.name_line, d.header_end


def _probe_cell(rank: int | None, hit_start: int | None, def_start: int, def_line: int) -> str:
    if rank is None:
        return "> 100"
    mark = "" if hit_start is not None and def_start <= hit_start <= def_line else " ≠"
    return f"{rank} (line {hit_start}{mark})"


def cmd_probe(args: argparse.Namespace) -> int:
    [repo] = load_benchmark(Path(args.cache), "all", [args.repo])
    engine = Engine(repo.root, EngineConfig(model=args.model), index_dir=repo.index_dir)
    rows = []
    try:
        for text in args.queries:
            where = find_definition(repo, text)
            if where is None:
                rows.append([text, "no such definition", None, None, None])
                continue
            path, start, name_line, header_end = where
            target = Target(path, start, header_end)
            row: list[Any] = [text, f"{path}:{name_line}"]
            for mode in MODES:
                hits = engine.search(text, limit=SEARCH_LIMIT, mode=mode).hits
                rank, hit_start = first_relevant(((h.path, h.start_line, h.end_line) for h in hits), target)
                row.append(_probe_cell(rank, hit_start, start, name_line))
            rows.append(row)
    finally:
        engine.close()
    print(table(["query", "definition", *[f"{m} rank (reported line)" for m in MODES]], rows))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--cache", default=str(DEFAULT_CACHE), help="corpus folder (default %(default)s)")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", parents=[common],
                           help="fetch, prepare and index the repositories, write the queries")
    build.add_argument("--only", nargs="*", default=[], help="only these repositories")
    build.add_argument("--seed", type=int, help="query sampling seed (default: the manifest's)")
    ev = sub.add_parser("eval", parents=[common], help="embed what is missing and score every query")
    ev.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    ev.add_argument("--only", nargs="*", default=[], help="only these repositories")
    ev.add_argument("--modes", default=",".join(MODES), help="comma-separated: fused,lexical,dense")
    ev.add_argument("--fractions", default="0,0.1,0.5", help="fused at these embedded fractions ('' for none)")
    ev.add_argument("--model", default=None, help="encoder (default: the engine's default model)")
    ev.add_argument("--json", default=None, help="where to write the results (default bench/results/)")
    emb = sub.add_parser("embed", parents=[common], help="only embed what is missing (eval does it too)")
    emb.add_argument("--split", choices=("dev", "test", "all"), default="all")
    emb.add_argument("--only", nargs="*", default=[], help="only these repositories")
    emb.add_argument("--model", default=None)
    probe = sub.add_parser("probe", parents=[common], help="rank of single queries' definitions in one repository")
    probe.add_argument("repo")
    probe.add_argument("queries", nargs="+")
    probe.add_argument("--model", default=None)
    args = parser.parse_args(argv)
    try:
        commands = {"build": cmd_build, "embed": cmd_embed, "eval": cmd_eval, "probe": cmd_probe}
        return commands[args.command](args)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
