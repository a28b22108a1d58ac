"""How far below the best score the editor's Search by Meaning picker should list results.

The VS Code picker asks the server for 50 chunks (``DEFAULT_LIMIT`` in extension/src/search.ts) and
used to list all of them, down to chunks that have nothing to do with the query. This bench indexes
dev sets as bench/quality.py does (same workspaces and caches), runs every query through
``Engine.search(limit=50)`` (fused, the product's path) and records the 50 scores and the rank of the
first chunk from a relevant file. It then evaluates cut-off rules of the form

    list hit i  if  i < min_shown  or  score_i >= best - margin

(``best`` = the first hit's score; the fused score is a cosine plus bounded boosts, so a difference
of scores means the same on every query, where a ratio would not). Per rule it reports how often the
first relevant hit, when the 50 contain one, is still listed ("kept"), and how many items are listed.

    python bench/result_cutoff.py fresh/python/dev fresh/javascript/dev cosqa/dev-nodoc \
        --max-docs 1500 --max-queries 300
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_WORK_DIR, CachingEncoder, ensure_chunker, load_average, machine_info, percentile, table
from quality import DATA_ROOT, load_dataset, log, prepare, subsample

PICKER_LIMIT = 50
MARGINS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, float("inf"))
MIN_SHOWN = (1, 5, 10)


def query_lists(prep: Any) -> list[tuple[list[float], int | None]]:
    """Per query: the scores of the hits, and the index of the first hit from a relevant file."""
    out = []
    for qid, text in prep.ds.queries.items():
        hits = prep.engine.search(text, limit=PICKER_LIMIT, mode="fused").hits
        relevant = prep.ds.qrels[qid]
        first = next((i for i, h in enumerate(hits) if prep.by_file.get(h.path) in relevant), None)
        out.append(([h.score for h in hits], first))
    return out


def shown(scores: list[float], margin: float, min_shown: int) -> int:
    if not scores:
        return 0
    best = scores[0]
    return sum(1 for i, s in enumerate(scores) if i < min_shown or s >= best - margin)


def evaluate(lists: list[tuple[list[float], int | None]], margin: float, min_shown: int) -> dict[str, float]:
    found = [(scores, first) for scores, first in lists if first is not None]
    lengths = [shown(scores, margin, min_shown) for scores, _ in lists]
    kept = sum(1 for scores, first in found if first is not None and first < shown(scores, margin, min_shown))
    return {"kept": kept / max(len(found), 1), "mean_shown": statistics.fmean(lengths),
            "median_shown": statistics.median(lengths), "found_in_50": len(found) / max(len(lists), 1)}


def gap_percentiles(lists: list[tuple[list[float], int | None]]) -> dict[str, float]:
    """best - score of the first relevant hit, over queries whose 50 hold one."""
    gaps = [scores[0] - scores[first] for scores, first in lists if first is not None]
    if not gaps:
        return {}
    return {f"p{q}": round(percentile(gaps, q), 3) for q in (50, 90, 95, 99, 100)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    parser.add_argument("--max-docs", type=int, default=None)
    parser.add_argument("--max-queries", type=int, default=None)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)

    ensure_chunker()
    from codesearch.embed.loading import load_encoder

    encoder = CachingEncoder(load_encoder(None, args.device, log))
    print(f"machine: {machine_info(encoder)}; load before: {load_average()}")
    all_lists: list[tuple[list[float], int | None]] = []
    for name in args.datasets:
        ds = subsample(load_dataset(name, args.data_root), args.max_docs, args.max_queries, args.seed)
        log(f"{name}: {len(ds.corpus)} docs, {len(ds.queries)} queries [{ds.sampled}]")
        prep = prepare(ds, args, encoder)
        lists = query_lists(prep)
        prep.engine.close()
        all_lists.extend(lists)
        print(f"\n{name} ({len(lists)} queries): gap best - first relevant {gap_percentiles(lists)}")
        print(report(lists))
    if len(args.datasets) > 1:
        print(f"\nall ({len(all_lists)} queries): gap best - first relevant {gap_percentiles(all_lists)}")
        print(report(all_lists))
    print(f"load after: {load_average()}")
    return 0


def report(lists: list[tuple[list[float], int | None]]) -> str:
    rows = []
    for min_shown in MIN_SHOWN:
        for margin in MARGINS:
            m = evaluate(lists, margin, min_shown)
            rows.append([min_shown, "none" if margin == float("inf") else f"{margin:.2f}", m["kept"],
                         m["mean_shown"], m["median_shown"]])
    found = evaluate(lists, float("inf"), 1)["found_in_50"]
    return f"(a relevant file in the {PICKER_LIMIT}: {found:.3f} of queries)\n" + table(
        ["min shown", "margin", "first relevant kept", "mean listed", "median listed"], rows)


if __name__ == "__main__":
    sys.exit(main())
