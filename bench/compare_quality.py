"""Side-by-side table of several `bench/quality.py --save` reports (e.g. the base model and a candidate).

    python bench/compare_quality.py base.json candidate.json [--metric mrr] [--modes dense,fused]

One row per (set, mode); one column per report, then each later report's difference to the first.
Only sets and modes present in every report are compared, and only if their samples match (same
docs/queries counts and sampling note): numbers from different samples are not comparable.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def label(report: dict[str, Any], path: Path) -> str:
    model = report.get("machine", {}).get("model")
    return f"{path.stem}: {model}" if model else path.stem


def compare(reports: list[dict[str, Any]], modes: list[str], metric: str) -> tuple[list[list[Any]], list[str]]:
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
            rows.append([name, mode, *values, *[v - values[0] for v in values[1:]]])
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
    args = parser.parse_args(argv)
    reports = [load(p) for p in args.reports]
    modes = [m for m in args.modes.split(",") if m]
    rows, notes = compare(reports, modes, args.metric)
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
