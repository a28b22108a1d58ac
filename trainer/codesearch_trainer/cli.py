"""``trainer``: fine-tune (train, simcse), export to ONNX, and evaluate code search encoders."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from .model import DEFAULT_MODEL
from .ranker_cli import export_ranker, train_ranker

ESTIMATOR_HELP = (
    "Soft-InfoNCE weight estimator: bm25 (α 1.5, β 0.5, t 1), simcse (α 1.3, β 0.7, t 0.1; "
    "--estimator-model or the base model), trained (α 1.3, β 0.7, t 5; --estimator-model required)."
)


def _common_training_options(fn: Any) -> Any:
    options = [
        click.option("--data", "data", multiple=True, type=click.Path(exists=True),
                     help="Training pairs: JSON lines {query, code}, CodeSearchNet lines, CoSQA json "
                          "or a BEIR folder (repeatable)."),
        click.option("--from-workspace", "from_workspace", multiple=True,
                     type=click.Path(exists=True, file_okay=False),
                     help="Mine docstring/comment → function pairs from a code base (repeatable)."),
        click.option("--output", required=True, type=click.Path(file_okay=False),
                     help="Output folder: epoch-N checkpoints, best/, metrics.jsonl."),
        click.option("--model", default=DEFAULT_MODEL, show_default=True,
                     help="Base encoder: the embedded default, a local folder or a hub id."),
        click.option("--epochs", default=1, show_default=True, type=int),
        click.option("--max-steps", type=int, help="Stop after this many optimizer steps."),
        click.option("--lr", type=float, help="Peak learning rate (train 2e-5, simcse 3e-5)."),
        click.option("--weight-decay", default=0.01, show_default=True, type=float),
        click.option("--warmup-ratio", default=0.1, show_default=True, type=float,
                     help="Share of the steps spent in linear warm-up; then linear decay to 0."),
        click.option("--max-grad-norm", default=1.0, show_default=True, type=float,
                     help="Gradient clipping (0: off)."),
        click.option("--seed", default=42, show_default=True, type=int),
        click.option("--amp/--no-amp", default=None,
                     help="bf16/fp16 autocast (default: on with CUDA, off on CPU)."),
        click.option("--device", help="cuda, cuda:1, cpu… (default: CUDA when present)."),
        click.option("--max-pairs", type=int, help="Train on a seeded random subset of this many pairs."),
        click.option("--min-query-words", default=1, show_default=True, type=int),
        click.option("--no-dedupe", is_flag=True, help="Keep duplicate queries/codes."),
        click.option("--resume", type=click.Path(exists=True),
                     help="Continue from an epoch-N checkpoint (or the latest in an output folder)."),
        click.option("--log-every", default=10, show_default=True, type=int),
        click.option("--save-every", type=int,
                     help="Also write a resumable checkpoint every N steps (into the epoch's folder)."),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        click.option("-v", "--verbose", is_flag=True),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


@click.group()
def main() -> None:
    """Fine-tune, export and evaluate code search encoders."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")


def _base_config(kw: dict[str, Any], lr_default: float) -> dict[str, Any]:
    return dict(
        output=kw["output"], data=list(kw["data"]), from_workspace=list(kw["from_workspace"]),
        model=kw["model"], epochs=kw["epochs"], max_steps=kw["max_steps"],
        lr=kw["lr"] if kw["lr"] is not None else lr_default, weight_decay=kw["weight_decay"],
        warmup_ratio=kw["warmup_ratio"], max_grad_norm=kw["max_grad_norm"], seed=kw["seed"],
        amp=kw["amp"], device=kw["device"], max_pairs=kw["max_pairs"],
        min_query_words=kw["min_query_words"], dedupe=not kw["no_dedupe"], resume=kw["resume"],
        log_every=kw["log_every"], save_every=kw["save_every"], progress=not kw["no_progress"],
    )


@main.command()
@_common_training_options
@click.option("--dev", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="BEIR dev folder for model selection on MRR (repeatable: the mean is used).")
@click.option("--loss", type=click.Choice(["infonce", "soft-infonce"]), default="infonce", show_default=True)
@click.option("--weights", type=click.Choice(["bm25", "simcse", "trained"]), default="bm25",
              show_default=True, help=ESTIMATOR_HELP)
@click.option("--estimator-model", help="Frozen model for --weights simcse/trained.")
@click.option("--alpha", type=float, help="Soft-InfoNCE α (default: the paper's, per estimator; 0 = InfoNCE).")
@click.option("--beta", type=float, help="Soft-InfoNCE β (default: the paper's, per estimator).")
@click.option("--t", "t", type=float, help="Estimator temperature t (default: the paper's, per estimator).")
@click.option("--scale", default=20.0, show_default=True, type=float,
              help="Similarity scale of the main loss: scores = scale · cos(q, c) (1/temperature).")
@click.option("--min-weight", default=0.1, show_default=True, type=float,
              help="Lower clamp of the Soft-InfoNCE weights.")
@click.option("--batch-size", default=32, show_default=True, type=int,
              help="Pairs per process (global batch = this × processes).")
@click.option("--max-length", default=256, show_default=True, type=int, help="Max tokens of the code side.")
@click.option("--query-max-length", default=64, show_default=True, type=int, help="Max tokens of a query.")
@click.option("--dev-max-queries", type=int, help="Evaluate dev sets on a seeded sample of queries.")
@click.option("--dev-max-corpus", type=int, help="Cap dev corpora (all relevant docs kept) for speed.")
@click.option("--eval-batch-size", default=64, show_default=True, type=int)
@click.option("--teacher", help="Distil from this frozen encoder (e.g. the base model into a `trainer student`): "
                                "adds KD and embedding regression to InfoNCE.")
@click.option("--contrastive-weight", default=1.0, show_default=True, type=float,
              help="With --teacher: weight of InfoNCE on the labelled pairs (0: pure distillation).")
@click.option("--distill-kd", default=1.0, show_default=True, type=float,
              help="With --teacher: weight of the KL to the teacher's in-batch score distribution.")
@click.option("--distill-regression", default=1.0, show_default=True, type=float,
              help="With --teacher: weight of the squared distance to the teacher's embeddings.")
def train(**kw: Any) -> None:
    """Fine-tune an encoder on (query, code) pairs with InfoNCE or Soft-InfoNCE."""
    from .train import TrainConfig
    from .train import train as run_train

    _setup_logging(kw["verbose"])
    cfg = TrainConfig(
        **_base_config(kw, 2e-5),
        dev=list(kw["dev"]), loss=kw["loss"], weights=kw["weights"],
        estimator_model=kw["estimator_model"], alpha=kw["alpha"], beta=kw["beta"], t=kw["t"],
        scale=kw["scale"], min_weight=kw["min_weight"], batch_size=kw["batch_size"],
        max_length=kw["max_length"], query_max_length=kw["query_max_length"],
        dev_max_queries=kw["dev_max_queries"], dev_max_corpus=kw["dev_max_corpus"],
        eval_batch_size=kw["eval_batch_size"], teacher=kw["teacher"],
        contrastive_weight=kw["contrastive_weight"], distill_kd=kw["distill_kd"],
        distill_regression=kw["distill_regression"],
    )
    try:
        result = run_train(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    mrr = f", dev MRR {result.best_dev_mrr:.4f}" if result.best_dev_mrr is not None else ""
    click.echo(f"best: {result.best} (epoch {result.best_epoch}{mrr}); {result.steps} steps in "
               f"{result.seconds:.0f} s")


@main.command()
@_common_training_options
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--max-length", default=64, show_default=True, type=int, help="Max tokens of a query.")
def simcse(**kw: Any) -> None:
    """Unsupervised SimCSE on the training queries (an estimator for --weights simcse)."""
    from .simcse import train_simcse
    from .train import TrainConfig

    _setup_logging(kw["verbose"])
    cfg = TrainConfig(**_base_config(kw, 3e-5), batch_size=kw["batch_size"],
                      query_max_length=kw["max_length"], max_length=kw["max_length"])
    try:
        result = train_simcse(cfg)
    except (ValueError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"SimCSE query encoder: {result.best}; {result.steps} steps in {result.seconds:.0f} s")


@main.command()
@click.argument("teacher")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--layers", help="Teacher layers to keep, comma-separated (e.g. 0,3,5).")
@click.option("--num-layers", type=int, help="Keep this many evenly spaced layers, first and last included "
                                             "(default: half of the teacher's).")
@click.option("--max-length", type=int, help="Max tokens (default: the teacher's).")
def student(teacher: str, out: str, layers: str | None, num_layers: int | None, max_length: int | None) -> None:
    """Make a smaller student from TEACHER's configuration and layers, for `trainer train --teacher`."""
    from .student import make_student, save_student

    if layers and num_layers:
        raise click.UsageError("choose one of --layers and --num-layers")
    try:
        keep = [int(x) for x in layers.split(",")] if layers else None
        encoder, kept = make_student(teacher, layers=keep, num_layers=num_layers, max_length=max_length)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    save_student(encoder, kept, teacher, out)
    params = sum(p.numel() for p in encoder.parameters())
    click.echo(f"student of {teacher}: layers {kept}, {params / 1e6:.1f} M parameters, max_length "
               f"{encoder.settings.max_length} → {out}")


@main.command()
@click.argument("a")
@click.argument("b")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--weight", required=True, type=click.FloatRange(0, 1), help="Weight of A (B gets 1 − weight).")
def interpolate(a: str, b: str, out: str, weight: float) -> None:
    """Average two checkpoints of one architecture, weight · A + (1 − weight) · B, into OUT."""
    from .student import interpolate as mix

    try:
        mix(a, b, weight, out)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{weight} × {a} + {1 - weight:g} × {b} → {out}")


@main.command()
@click.argument("checkpoint")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--fp16", is_flag=True, help="Store the graph's weights in fp16.")
@click.option("--int8", is_flag=True,
              help="Dynamic int8 quantisation (faster on CPU, lossier, slightly batch-dependent); its measured "
                   "cosine to the fp32 model is printed.")
@click.option("--int8-weights", is_flag=True,
              help="int8 weights with fp32 arithmetic: a quarter of the size, near-lossless, fp32 speed.")
@click.option("--max-length", type=int, help="Max tokens (default: the checkpoint's).")
@click.option("--model-id", help="Name recorded in the manifest (default: CHECKPOINT).")
def export(checkpoint: str, out: str, fp16: bool, int8: bool, int8_weights: bool, max_length: int | None,
           model_id: str | None) -> None:
    """Export CHECKPOINT to an ONNX model folder OUT for the engine, validated against PyTorch."""
    from .export import export_checkpoint, quantize_int8

    if fp16 + int8 + int8_weights > 1:
        raise click.UsageError("choose one of --fp16, --int8 and --int8-weights")
    try:
        manifest = export_checkpoint(checkpoint, out, fp16=fp16, max_length=max_length, model_id=model_id)
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from exc
    parity = manifest.extra.get("parity_min_cosine")
    click.echo(f"exported {checkpoint} → {out} (dimension {manifest.dimension}, max_length "
               f"{manifest.max_length}, {manifest.precision}); validated against PyTorch"
               + (f": minimum cosine {parity}" if parity is not None else ""))
    if int8 or int8_weights:
        report = quantize_int8(out, checkpoint, weights_only=int8_weights)
        click.echo(
            f"int8: cosine to the fp32 PyTorch model mean {report.mean_cosine:.4f}, min "
            f"{report.min_cosine:.4f} (fp32 graph {report.fp32_bytes / 2**20:.1f} MiB → int8 "
            f"{report.int8_bytes / 2**20:.1f} MiB). Measure retrieval with `trainer eval` before using it."
        )


def _split_eval_args(args: tuple[str, ...], data_opt: tuple[str, ...]) -> tuple[list[str], list[str]]:
    models: list[str] = []
    datasets: list[str] = list(data_opt)
    in_data = False
    for arg in args:
        if arg == "--data":
            in_data = True
        elif arg.startswith("--data="):
            datasets.append(arg.split("=", 1)[1])
            in_data = True
        elif arg.startswith("-"):
            raise click.UsageError(f"unknown option {arg}")
        else:
            (datasets if in_data else models).append(arg)
    return models, datasets


@main.command(name="eval", context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--max-queries", type=int, help="Seeded sample of queries per dataset.")
@click.option("--max-corpus", type=int, help="Cap each corpus (relevant docs always kept).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", help="For PyTorch models: cuda, cpu… (default: CUDA when present).")
@click.option("--batch-size", default=64, show_default=True, type=int)
@click.option("--output", type=click.Path(dir_okay=False), help="Also write the JSON results here.")
def eval_cmd(args: tuple[str, ...], as_json: bool, max_queries: int | None, max_corpus: int | None,
             seed: int, device: str | None, batch_size: int, output: str | None) -> None:
    """Evaluate MODEL... on BEIR folders: trainer eval MODEL... --data BEIR_DIR...

    A MODEL is an exported ONNX folder (with manifest.json), a checkpoint or HF folder, a hub id,
    or the default model's name. Prints MRR, NDCG@10 and Recall@1/5/10/100 for each pair.
    """
    from .evaluate import evaluate, format_table, load_beir, open_encoder

    models, datasets = _split_eval_args(args, ())
    if not models or not datasets:
        raise click.UsageError("usage: trainer eval MODEL... --data BEIR_DIR...")
    for d in datasets:
        if not Path(d).is_dir():
            raise click.UsageError(f"{d} is not a BEIR folder")
    loaded = [load_beir(d, max_queries=max_queries, max_corpus=max_corpus, seed=seed) for d in datasets]
    results = []
    for name in models:
        encoder = open_encoder(name, device=device, batch_size=batch_size)
        for data in loaded:
            metrics = evaluate(encoder, data)
            results.append({"model": name, "dataset": data.name, "metrics": metrics})
            if not as_json:
                click.echo(f"{name} on {data.name}: MRR {metrics['mrr']:.4f} ({metrics['seconds']:.0f} s)",
                           err=True)
    if output:
        Path(output).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        click.echo(format_table(results))


main.add_command(train_ranker)
main.add_command(export_ranker)


if __name__ == "__main__":
    main()
