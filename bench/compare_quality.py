"""Side-by-side table of several `bench/quality.py --save` reports (e.g. the base model and a candidate).

    python bench/compare_quality.py base.json candidate.json [--metric mrr] [--modes dense,fused]

One row per (set, mode); one column per report, then each later report's difference to the first.
Only sets and modes present in every report are compared, and only if their samples match (same
docs/queries counts and sampling note): numbers from different samples are not comparable.

For MRR, where both reports hold the per-query reciprocal ranks (``bench/quality.py`` saves them), each
difference comes with a paired bootstrap 95 % interval (queries resampled with replacement, the same
resample for both models, ``--rounds`` times): an interval that contains 0 means the two models cannot
be told apart on that sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def label(report: dict[str, Any], path: Path) -> str:
    model = report.get("machine", {}).get("model")
    return f"{path.stem}: {model}" if model else path.stem


def paired_interval(first: dict[str, float], other: dict[str, float], rounds: int,
                    seed: int = 0) -> tuple[float, float] | None:
    """95 % bootstrap interval of mean(other − first) over the queries both rank, or None if none."""
    shared = sorted(set(first) & set(other))
    if not shared or rounds <= 0:
        return None
    diff = np.array([other[q] - first[q] for q in shared])
    picks = np.random.default_rng(seed).integers(0, len(diff), size=(rounds, len(diff)))
    means = diff[picks].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def delta_cell(delta: float, interval: tuple[float, float] | None) -> str | float:
    if interval is None:
        return delta
    return f"{delta:+.3f} [{interval[0]:+.3f}, {interval[1]:+.3f}]"


def intervals(entries: list[dict[str, Any]], mode: str, metric: str, rounds: int) -> list[tuple[float, float] | None]:
    ranks = [e.get("reciprocal_ranks", {}).get(mode) if metric == "mrr" else None for e in entries]
    if ranks[0] is None:
        return [None for _ in entries[1:]]
    return [paired_interval(ranks[0], r, rounds) if r is not None else None for r in ranks[1:]]


def compare(reports: list[dict[str, Any]], modes: list[str], metric: str,
            rounds: int = 2000) -> tuple[list[list[Any]], list[str]]:
    first = reports[0]["datasets"]
    rows: list[list[Any]] = []
    notes: list[str] = []
    means: dict[str, list[list[float]]] = {m: [[] for _ in reports] for m in modes}
    for name, entry in first.items():
        others = [r["datasets"].get(name) for r in reports[1:]]
        if any(o is None for o in others):
            notes.append(f"{name}: not in every report, skipped")
            continue
        key = (entry["docs"], entry["queries"], entry["sampled"])
        if any((o["docs"], o["queries"], o["sampled"]) != key for o in others):
            notes.append(f"{name}: different samples ({key} vs others), skipped")
            continue
        for mode in modes:
            values = [e["modes"].get(mode, {}).get(metric) for e in [entry, *others]]
            if any(v is None for v in values):
                continue
            for i, v in enumerate(values):
                means[mode][i].append(v)
            spans = intervals([entry, *others], mode, metric, rounds)
            deltas = [delta_cell(v - values[0], i) for v, i in zip(values[1:], spans, strict=True)]
            rows.append([name, mode, *values, *deltas])
    for mode in modes:
        cols = means[mode]
        if cols[0]:
            avg = [sum(c) / len(c) for c in cols]
            rows.append([f"mean of {len(cols[0])} sets", mode, *avg, *[a - avg[0] for a in avg[1:]]])
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reports", nargs="+", type=Path)
    parser.add_argument("--metric", default="mrr")
    parser.add_argument("--modes", default="dense,fused")
    parser.add_argument("--rounds", type=int, default=2000, help="bootstrap resamples for the MRR intervals (0: none)")
    args = parser.parse_args(argv)
    reports = [load(p) for p in args.reports]
    modes = [m for m in args.modes.split(",") if m]
    rows, notes = compare(reports, modes, args.metric, args.rounds)
    labels = [label(r, p) for r, p in zip(reports, args.reports, strict=True)]
    headers = ["set", "mode", *labels, *[f"Δ {p.stem}" for p in args.reports[1:]]]
    print(f"{args.metric}; reports: " + "; ".join(f"{p}: {r['command']}" for p, r in zip(args.reports, reports,
                                                                                       strict=True)))
    print()
    print(table(headers, rows))
    for note in notes:
        print(f"note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
