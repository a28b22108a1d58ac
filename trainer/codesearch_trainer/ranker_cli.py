"""``trainer train-ranker`` and ``trainer export-ranker`` (standalone click commands).

Register them on the ``trainer`` group with ``main.add_command(train_ranker)`` and
``main.add_command(export_ranker)``; ``python -m codesearch_trainer.ranker_cli`` runs them on their own.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click

from .model import DEFAULT_MODEL


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


@click.command(name="train-ranker")
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True),
              help="Training pairs: JSON lines {query, code}, CodeSearchNet lines, CoSQA json or a BEIR "
                   "folder (repeatable).")
@click.option("--retriever", required=True, type=click.Path(exists=True, file_okay=False),
              help="The frozen retriever that mines hard negatives and ranks dev sets: an exported model "
                   "folder (manifest.json), or a PyTorch encoder folder.")
@click.option("--output", required=True, type=click.Path(file_okay=False),
              help="Output folder: step-N checkpoints, best/, metrics.jsonl, negatives.json.")
@click.option("--dev", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="BEIR dev folder for model selection: MRR of the retriever's top K re-ranked (repeatable: "
                   "the mean is used).")
@click.option("--model", default=DEFAULT_MODEL, show_default=True,
              help="Encoder to start from (the embedded default, a folder or a hub id), or a ranker checkpoint.")
@click.option("--negatives", type=click.Choice(["hard", "random"]), default="hard", show_default=True,
              help="hard: mined below the gold item by the retriever; random: in-batch random (baseline).")
@click.option("--window-start", default=1, show_default=True, type=int,
              help="First kept candidate below the gold item (1 = the next one), duplicates skipped.")
@click.option("--window-size", default=16, show_default=True, type=int,
              help="How many candidates below the gold item make up a query's hard-negative window.")
@click.option("--negatives-per-query", default=7, show_default=True, type=int,
              help="Negatives scored with each query per step (drawn from the window / the batch).")
@click.option("--near-dup-cosine", default=0.98, show_default=True, type=float,
              help="Code-to-code retriever cosine at or above which a candidate counts as a duplicate.")
@click.option("--near-dup-jaccard", default=0.9, show_default=True, type=float,
              help="Token-set Jaccard at or above which a candidate counts as a duplicate.")
@click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None,
              help="What the relevance head reads: mean of the pair's token states, or [CLS] (default: mean "
                   "for a fresh head, a ranker checkpoint's own otherwise).")
@click.option("--temperature", default=1.0, show_default=True, type=float,
              help="Softmax temperature of the loss: logits = score / temperature.")
@click.option("--epochs", default=1, show_default=True, type=int)
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--batch-size", default=16, show_default=True, type=int,
              help="Queries per step (each with 1 + negatives-per-query pairs).")
@click.option("--max-length", default=256, show_default=True, type=int, help="Max tokens of a (query, code) pair.")
@click.option("--query-max-length", default=64, show_default=True, type=int,
              help="Max tokens of the query inside a pair (it comes first; the code gets the rest).")
@click.option("--lr", default=3e-5, show_default=True, type=float, help="Peak learning rate.")
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--warmup-ratio", default=0.1, show_default=True, type=float)
@click.option("--max-grad-norm", default=1.0, show_default=True, type=float, help="Gradient clipping (0: off).")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--amp/--no-amp", default=None, help="bf16/fp16 autocast (default: on with CUDA, off on CPU).")
@click.option("--device", help="cuda, cuda:1, cpu… (default: CUDA when present).")
@click.option("--max-pairs", type=int, help="Train (and mine) on a seeded random subset of this many pairs.")
@click.option("--min-query-words", default=1, show_default=True, type=int)
@click.option("--no-dedupe", is_flag=True, help="Keep duplicate queries/codes.")
@click.option("--mining-cache", type=click.Path(file_okay=False),
              help="Folder caching retriever embeddings (default: OUTPUT/cache); share it between runs.")
@click.option("--dev-max-queries", type=int, help="Evaluate dev sets on a seeded sample of queries.")
@click.option("--dev-max-corpus", type=int, help="Cap dev corpora (all relevant docs kept) for speed.")
@click.option("--dev-rerank-k", default=20, show_default=True, type=int,
              help="Retriever candidates re-ranked per dev query for model selection.")
@click.option("--eval-every", type=int, help="Evaluate and checkpoint every N steps (default: each epoch).")
@click.option("--eval-batch-size", default=128, show_default=True, type=int)
@click.option("--resume", type=click.Path(exists=True),
              help="Continue from a step-N checkpoint (or the latest in an output folder).")
@click.option("--log-every", default=10, show_default=True, type=int)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("-v", "--verbose", is_flag=True)
def train_ranker(**kw: Any) -> None:
    """Train a cross-encoder ranker on (query, code) pairs with ranking-based hard negatives."""
    from .ranker_train import RankerTrainConfig
    from .ranker_train import train_ranker as run

    _setup_logging(kw.pop("verbose"))
    kw["data"] = list(kw["data"])
    kw["dev"] = list(kw["dev"])
    kw["dedupe"] = not kw.pop("no_dedupe")
    kw["progress"] = not kw.pop("no_progress")
    cfg = RankerTrainConfig(**kw)
    try:
        result = run(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    mrr = f", dev MRR (re-ranked) {result.best_dev_mrr:.4f}" if result.best_dev_mrr is not None else ""
    click.echo(f"best: {result.best} (step {result.best_step}{mrr}); {result.steps} steps in "
               f"{result.seconds:.0f} s")


@click.command(name="export-ranker")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--fp16", is_flag=True, help="Store the graph's weights in fp16.")
@click.option("--model-id", help="Name recorded in the manifest (default: CHECKPOINT).")
def export_ranker(checkpoint: str, out: str, fp16: bool, model_id: str | None) -> None:
    """Export a ranker CHECKPOINT to an ONNX model folder OUT, validated against PyTorch."""
    from .ranker_export import export_ranker as run

    try:
        manifest = run(checkpoint, out, fp16=fp16, model_id=model_id)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    parity = {k: manifest.extra.get(k) for k in ("parity_max_abs_diff", "parity_score_cosine")}
    click.echo(f"exported ranker {checkpoint} → {out} (max_length {manifest.max_length}, query_max_length "
               f"{manifest.extra.get('query_max_length')}, {manifest.precision}); validated against PyTorch: "
               f"{json.dumps(parity)}")


@click.group()
def main() -> None:
    """Ranker commands (also registered on the `trainer` group)."""


main.add_command(train_ranker)
main.add_command(export_ranker)


if __name__ == "__main__":
    main()
