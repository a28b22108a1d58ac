"""Ranking variants on the repository benchmark: every query's retrieval is done once, then scored
under each ``RankingWeights`` variant through the engine's own ``run_search`` (memoised store, same
ranking as ``Engine.search`` with those weights).

    python bench/repo_sweep.py --split dev                                  # defaults only
    python bench/repo_sweep.py --split dev --grid names                     # a named grid (GRIDS below)
    python bench/repo_sweep.py --split dev --variant "lex.25:lexical_language=0.25,lexical_mixed=0.25"
    python bench/repo_sweep.py --split dev --fractions 0,0.1,0.5 --grid stand_in

States: ``full`` (the index as built, fully embedded) and, per ``--fractions``, a copy keeping the
vectors of only that share of the chunk texts in the engine's embedding order (bench/repos.py
``partial_index``; copies are cached under ``--partial-cache``). Rows are variants; columns NDCG@10
per state and kind (all queries, doc, ident, file), plus the retrievers alone for reference.
Select on ``--split dev``; the test split is for the final table (bench/repos.py eval).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from codesearch.engine import Engine, EngineConfig
from codesearch.query.scoring import RankingWeights
from codesearch.query.search import run_search
from common import CachingEncoder, MemoIndex, MemoStore, table
from repo_corpus import DEFAULT_CACHE
from repo_metrics import Outcome, first_relevant, summarize
from repos import KINDS, Repo, load_benchmark, partial_index, target_of

LIMIT = 100
PARTIAL_CACHE = Path("/tmp/codesearch-bench/repo-partial")

GRIDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "lexical": [(f"lexical={w}", {"lexical_language": w, "lexical_mixed": w, "lexical_identifier": w})
                for w in (0.05, 0.1, 0.15, 0.25, 0.4, 0.6)],
    "stand_in": [("scaled 0.3", {"stand_in": "scaled"}), ("floor", {"stand_in": "floor"}),
                 ("rank", {"stand_in": "rank"})],
}


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    label, _, body = spec.partition(":")
    if not body:
        label, body = spec, spec
    overrides: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(RankingWeights)}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, _, value = part.partition("=")
        if key not in fields:
            raise SystemExit(f"unknown RankingWeights field {key!r}")
        default = fields[key].default
        overrides[key] = value if isinstance(default, str) else type(default)(float(value))
    return label, overrides


def weights_of(base: dict[str, Any], overrides: dict[str, Any]) -> RankingWeights:
    return RankingWeights(**{**base, **overrides})


def partial_copy(repo: Repo, model_key: str, fraction: float, cache: Path) -> Path:
    dest = cache / f"{repo.name}-{round(fraction * 100)}"
    if not (dest / "index.db").exists():
        partial_index(repo.index_dir, model_key, fraction, dest)
    return dest


def sweep_state(engine: Engine, encoder: Any, repo: Repo, variants: list[tuple[str, RankingWeights]],
                references: bool) -> dict[str, list[Outcome]]:
    """Outcomes of every query under every variant (and the retrievers alone) on one index."""
    index = engine._vector_index() if engine.store.count_vectors(encoder.model_key) else None
    runs: dict[str, list[Outcome]] = {label: [] for label, _ in variants}
    modes = ("lexical", "dense") if references else ()
    for mode in modes:
        runs[mode] = []
    for q in repo.queries:
        store, vindex = MemoStore(engine.store), MemoIndex(index) if index is not None else None
        for label, weights in variants:
            runs[label].append(_outcome(q, run_search(store, vindex, encoder, q.text, limit=LIMIT, weights=weights)))
        for mode in modes:
            runs[mode].append(_outcome(q, run_search(store, vindex, encoder, q.text, limit=LIMIT,
                                                     weights=variants[0][1], mode=mode)))  # type: ignore[arg-type]
    return runs


def _outcome(q: Any, outcome: Any) -> Outcome:
    rank, start = first_relevant(((h.path, h.start_line, h.end_line) for h in outcome.hits), target_of(q))
    return Outcome(q.id, rank, start)


def run(repos: Sequence[Repo], variants: list[tuple[str, RankingWeights]], fractions: Sequence[float],
        partial_cache: Path) -> dict[str, dict[str, dict[str, list[Outcome]]]]:
    """state -> run name -> repo -> outcomes."""
    results: dict[str, dict[str, dict[str, list[Outcome]]]] = {}
    encoder: Any = None
    for repo in repos:
        started = time.perf_counter()
        engine = Engine(repo.root, EngineConfig(), index_dir=repo.index_dir)
        encoder = encoder or CachingEncoder(engine.encoder)
        model_key = encoder.model_key
        try:
            _add(results, "full", repo.name, sweep_state(engine, encoder, repo, variants, references=True))
        finally:
            engine.close()
        for fraction in fractions:
            copy = partial_copy(repo, model_key, fraction, partial_cache)
            engine = Engine(repo.root, EngineConfig(), index_dir=copy)
            try:
                _add(results, f"@{fraction:.0%}", repo.name, sweep_state(engine, encoder, repo, variants, False))
            finally:
                engine.close()
        print(f"  {repo.name}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return results


def _add(results: dict[str, dict[str, dict[str, list[Outcome]]]], state: str, repo: str,
         runs: dict[str, list[Outcome]]) -> None:
    for name, outcomes in runs.items():
        results.setdefault(state, {}).setdefault(name, {})[repo] = outcomes


def report(results: dict[str, dict[str, dict[str, list[Outcome]]]], repos: Sequence[Repo], metric: str) -> str:
    kind_of = {q.id: q.kind for r in repos for q in r.queries}
    states = list(results)
    names = list(dict.fromkeys(n for s in states for n in results[s]))
    rows = []
    for name in names:
        row: list[Any] = [name]
        for state in states:
            outcomes = [o for per_repo in results[state].get(name, {}).values() for o in per_repo]
            if not outcomes:
                row += [None] * (1 + len(KINDS))
                continue
            row.append(getattr(summarize(outcomes), metric))
            row += [getattr(summarize([o for o in outcomes if kind_of[o.query_id] == k]), metric) for k in KINDS]
        rows.append(row)
    heads = [f"{s} {k}" for s in states for k in ("all", *KINDS)]
    return table(["variant", *heads], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=str(DEFAULT_CACHE))
    parser.add_argument("--split", choices=("dev", "test", "all"), default="dev")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--grid", action="append", default=[], choices=sorted(GRIDS))
    parser.add_argument("--variant", action="append", default=[], help="LABEL:field=value,field=value")
    parser.add_argument("--base", default="", help="field=value,... applied to every variant")
    parser.add_argument("--fractions", default="", help="e.g. 0,0.1,0.5")
    parser.add_argument("--partial-cache", type=Path, default=PARTIAL_CACHE)
    parser.add_argument("--metric", default="ndcg10", choices=("ndcg10", "mrr", "top1"))
    parser.add_argument("--json", type=Path, default=None, help="also write the per-query outcomes here")
    args = parser.parse_args(argv)
    base = parse_variant(f"base:{args.base}")[1] if args.base else {}
    specs = [("defaults", {})] + [v for g in args.grid for v in GRIDS[g]] + [parse_variant(v) for v in args.variant]
    variants = [(label, weights_of(base, overrides)) for label, overrides in specs]
    repos = load_benchmark(Path(args.cache), args.split, args.only)
    fractions = [float(x) for x in args.fractions.split(",") if x.strip()]
    started = time.perf_counter()
    results = run(repos, variants, fractions, args.partial_cache)
    print(f"split {args.split}, {sum(len(r.queries) for r in repos)} queries in {len(repos)} repositories, "
          f"base {base or 'RankingWeights()'}, {args.metric}, {time.perf_counter() - started:.0f} s\n")
    print(report(results, repos, args.metric))
    if args.json:
        args.json.write_text(json.dumps({
            "command": " ".join(sys.argv), "variants": {label: dataclasses.asdict(w) for label, w in variants},
            "outcomes": {state: {name: {repo: [[o.query_id, o.rank] for o in outs] for repo, outs in per.items()}
                                 for name, per in runs.items()} for state, runs in results.items()},
        }, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
