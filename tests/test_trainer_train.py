"""The training loop on a tiny random BERT: loss goes down, checkpoints, dev selection, resume, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from codesearch_trainer.cli import main
from codesearch_trainer.model import TRAINER_CONFIG, load_encoder
from codesearch_trainer.testing import tiny_bert
from codesearch_trainer.train import STATE_FILE, Optimization, TrainConfig, train

VERBS = ["read", "write", "parse", "load", "save", "sort", "merge", "split", "find", "delete", "update", "check"]
NOUNS = ["file", "json", "config", "user", "cache", "list", "date", "url"]


def make_pairs(path: Path, n: int = 48) -> Path:
    rows = []
    for i in range(n):
        verb, noun = VERBS[i % len(VERBS)], NOUNS[(i // len(VERBS)) % len(NOUNS)]
        rows.append({"query": f"{verb} the {noun}",
                     "code": f"def {verb}_{noun}(x):\n    return {noun}.{verb}(x)\n", "language": "python"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def make_dev(folder: Path, n: int = 12) -> Path:
    folder.mkdir(parents=True)
    corpus, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for i in range(n):
        verb, noun = VERBS[(i + 3) % len(VERBS)], NOUNS[(i + 5) % len(NOUNS)]
        corpus.append({"_id": f"c{i}", "title": "", "text": f"def {verb}_{noun}(y):\n    return {noun}.{verb}(y)\n"})
        queries.append({"_id": f"q{i}", "text": f"{verb} a {noun}"})
        qrels.append(f"q{i}\tc{i}\t1")
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus))
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries))
    (folder / "qrels.tsv").write_text("\n".join(qrels) + "\n")
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pairs(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def _records(out: Path, kind: str) -> list[dict]:
    lines = (out / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_tiny_bert_trains_and_loss_goes_down(tiny: Path, tmp_path: Path) -> None:
    pairs = make_pairs(tmp_path / "pairs96.jsonl", 96)
    out = tmp_path / "run"
    cfg = TrainConfig(output=str(out), data=[str(pairs)], model=str(tiny), epochs=4, batch_size=8,
                      lr=2e-3, warmup_ratio=0.0, max_length=32, query_max_length=16, log_every=1,
                      progress=False, seed=1)
    result = train(cfg)
    losses = [r["loss"] for r in _records(out, "train")]
    assert result.steps == 4 * 12 == len(losses)
    first, last = sum(losses[:12]) / 12, sum(losses[-12:]) / 12
    assert last < 0.7 * first, (first, last)
    for n in range(1, 5):
        assert (out / f"epoch-{n}" / STATE_FILE).is_file()
    assert (out / "best" / "model.safetensors").is_file() and not (out / "best" / STATE_FILE).exists()
    assert result.best_epoch == 4  # no dev data: the last checkpoint
    saved = json.loads((out / "best" / TRAINER_CONFIG).read_text())
    assert saved["pooling"] == "mean" and saved["normalize"] is True
    assert saved["max_length"] == 128  # the model's own limit: --max-length 32 only truncated batches
    assert saved["training"]["loss"] == "infonce" and saved["training"]["step"] == 48
    enc = load_encoder(out / "best")
    assert enc.encode(["read the file"]).shape == (1, 32)


def test_soft_infonce_with_dev_selection(tiny: Path, pairs_file: Path, tmp_path: Path) -> None:
    dev = make_dev(tmp_path / "dev")
    out = tmp_path / "soft"
    cfg = TrainConfig(output=str(out), data=[str(pairs_file)], dev=[str(dev)], model=str(tiny),
                      loss="soft-infonce", weights="bm25", epochs=3, batch_size=8, lr=2e-3,
                      max_length=32, query_max_length=16, progress=False)
    result = train(cfg)
    evals = _records(out, "eval")
    assert len(evals) == 3
    mrrs = [e["dev_mrr"] for e in evals]
    assert result.best_dev_mrr == max(mrrs)
    assert result.best_epoch == mrrs.index(max(mrrs)) + 1
    config = _records(out, "config")[0]
    assert (config["alpha"], config["beta"], config["t"]) == (1.5, 0.5, 1.0)
    best = json.loads((out / "best" / TRAINER_CONFIG).read_text())["training"]
    assert best["epoch"] == result.best_epoch and best["weights"] == "bm25"


def test_resume_continues_where_it_stopped(tiny: Path, pairs_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "resume"
    base = dict(output=str(out), data=[str(pairs_file)], model=str(tiny), batch_size=8, max_length=32,
                query_max_length=16, log_every=1, progress=False)
    first = train(TrainConfig(**base, epochs=2, max_steps=4))  # type: ignore[arg-type]
    assert first.steps == 4
    state_epoch = out / "epoch-1"
    assert (state_epoch / STATE_FILE).is_file()
    second = train(TrainConfig(**base, epochs=2, resume=str(out)))  # type: ignore[arg-type]
    assert second.steps == 12
    steps = [r["step"] for r in _records(out, "train")]
    assert steps == list(range(1, 13))
    assert (out / "epoch-2" / STATE_FILE).is_file()


def test_save_every_writes_resumable_mid_epoch_checkpoints(
    tiny: Path, pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "partial"
    cfg = TrainConfig(output=str(out), data=[str(pairs_file)], model=str(tiny), batch_size=8, max_length=32,
                      query_max_length=16, log_every=1, progress=False, epochs=1, save_every=2)
    real_step = Optimization.step
    calls = []

    def killed_at_step_5(self: Optimization, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # the run dies during step 5
        real_step(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Optimization, "step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.setattr(Optimization, "step", real_step)
    state = torch.load(out / "epoch-1" / STATE_FILE, weights_only=False)
    assert (state["step"], state["batches_done"]) == (4, 4)
    assert json.loads((out / "epoch-1" / TRAINER_CONFIG).read_text())["training"]["partial"] is True
    finished = train(dataclasses.replace(cfg, resume=str(out)))
    assert finished.steps == 6  # 48 pairs / 8
    assert [r["step"] for r in _records(out, "train")] == [1, 2, 3, 4, 5, 6]


def test_small_batch_for_bm25_weights_is_refused(tiny: Path, pairs_file: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(output=str(tmp_path / "x"), data=[str(pairs_file)], model=str(tiny), loss="soft-infonce",
                      weights="bm25", batch_size=4, progress=False)
    with pytest.raises(ValueError, match="too small"):
        train(cfg)


def test_cli_train_simcse_then_soft_infonce_with_each_neural_estimator(
    tiny: Path, pairs_file: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    common = ["--data", str(pairs_file), "--model", str(tiny), "--max-steps", "3", "--no-progress"]
    res = runner.invoke(main, ["simcse", *common, "--output", str(tmp_path / "simcse"), "--batch-size", "8"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "simcse" / "best" / "model.safetensors").is_file()
    res = runner.invoke(main, ["train", *common, "--output", str(tmp_path / "info"), "--batch-size", "8",
                               "--max-length", "32"])
    assert res.exit_code == 0, res.output
    for weights, estimator in (("simcse", tmp_path / "simcse" / "best"), ("trained", tmp_path / "info" / "best")):
        out = tmp_path / f"soft-{weights}"
        res = runner.invoke(main, ["train", *common, "--output", str(out), "--batch-size", "8",
                                   "--loss", "soft-infonce", "--weights", weights,
                                   "--estimator-model", str(estimator), "--t", "0.5"])
        assert res.exit_code == 0, res.output
        config = _records(out, "config")[0]
        assert (config["weights"], config["alpha"], config["beta"], config["t"]) == (weights, 1.3, 0.7, 0.5)
    res = runner.invoke(main, ["train", *common, "--output", str(tmp_path / "bad"), "--loss", "soft-infonce",
                               "--weights", "trained"])
    assert res.exit_code != 0 and "estimator-model" in res.output


def test_from_workspace_training(tiny: Path, tmp_path: Path) -> None:
    from test_trainer_data import make_fixture_repo

    repo = make_fixture_repo(tmp_path / "repo")
    res = CliRunner().invoke(main, ["train", "--from-workspace", str(repo), "--model", str(tiny), "--output",
                                    str(tmp_path / "ws"), "--batch-size", "2", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert _records(tmp_path / "ws", "config")[0]["pairs"] >= 2


def _losses(out: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in _records(out, "train")}  # a repeated step: the later run


def test_resume_after_a_crash_mid_epoch_goes_on_as_if_uninterrupted(
    pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two epochs of 6 steps, --save-every 4; a crash in step 10 resumes from the partial epoch-2
    (step 8, 2 batches of epoch 2 done) and gives the losses and weights of the run that never stopped
    (no dropout, so the re-seeded generator changes nothing)."""
    model = tiny_bert(tmp_path / "bert", dropout=0.0)
    base = dict(data=[str(pairs_file)], model=str(model), batch_size=8, max_length=32, query_max_length=16,
                log_every=1, progress=False, epochs=2, save_every=4, lr=2e-3)
    whole = train(TrainConfig(output=str(tmp_path / "whole"), **base))  # type: ignore[arg-type]
    assert whole.steps == 12
    out = tmp_path / "crashed"
    real_step, calls = Optimization.step, [0]

    def crash_in_step_10(self: Optimization, *args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 10:
            raise RuntimeError("simulated crash")
        real_step(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Optimization, "step", crash_in_step_10)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TrainConfig(output=str(out), **base))  # type: ignore[arg-type]
    monkeypatch.undo()
    state = torch.load(out / "epoch-2" / STATE_FILE, weights_only=False)
    assert (state["step"], state["epoch"], state["batches_done"]) == (8, 1, 2)
    resumed = train(TrainConfig(output=str(out), resume=str(out), **base))  # type: ignore[arg-type]
    assert resumed.steps == 12 and [h["epoch"] for h in resumed.history] == [2]
    want, got = _losses(tmp_path / "whole"), _losses(out)
    assert sorted(got) == list(range(1, 13))
    assert [got[s] for s in range(9, 13)] == pytest.approx([want[s] for s in range(9, 13)], abs=1e-5)
    texts = ["read the file", "def sort_list(y): return list.sort(y)"]
    a = load_encoder(tmp_path / "whole" / "best").encode(texts)
    b = load_encoder(out / "best").encode(texts)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_resume_keeps_the_best_checkpoint_chosen_before_it(
    tiny: Path, pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dev MRRs scripted 0.9, 0.5 (first run, epochs 1-2), 0.7 (epoch 3, after a crash and a resume from
    the partial epoch-3 checkpoint): best stays epoch 1."""
    import codesearch_trainer.train as tr

    scripted = iter([0.9, 0.5, 0.7])
    monkeypatch.setattr(tr, "evaluate_dev", lambda encoder, dev, batch_size: {"dev": {"mrr": next(scripted)}})
    out = tmp_path / "run"
    base = dict(output=str(out), data=[str(pairs_file)], dev=[str(make_dev(tmp_path / "dev"))], model=str(tiny),
                batch_size=8, max_length=32, query_max_length=16, progress=False, epochs=3, save_every=4)
    real_step, calls = Optimization.step, [0]

    def crash_in_step_17(self: Optimization, *args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] == 17:
            raise RuntimeError("simulated crash")
        real_step(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Optimization, "step", crash_in_step_17)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(TrainConfig(**base))  # type: ignore[arg-type]
    monkeypatch.setattr(Optimization, "step", real_step)
    state = torch.load(out / "epoch-3" / STATE_FILE, weights_only=False)
    assert (state["step"], state["batches_done"], state["best_epoch"], state["best_mrr"]) == (16, 4, 1, 0.9)
    resumed = train(TrainConfig(**base, resume=str(out)))  # type: ignore[arg-type]
    assert (resumed.best_epoch, resumed.best_dev_mrr, resumed.steps) == (1, 0.9, 18)
    assert [(h["epoch"], h["dev_mrr"], h["best_epoch"]) for h in resumed.history] == [(3, 0.7, 1)]
    saved = json.loads((out / "best" / TRAINER_CONFIG).read_text())["training"]
    assert (saved["epoch"], saved["dev_mrr"]) == (1, 0.9)
    state = torch.load(out / "epoch-3" / STATE_FILE, weights_only=False)
    assert (state["best_epoch"], state["best_mrr"]) == (1, 0.9)
    done = _records(out, "done")[-1]
    assert (done["best_epoch"], done["best_dev_mrr"]) == (1, 0.9)


def test_without_dev_sets_the_saved_state_names_the_latest_epoch_best(
    tiny: Path, pairs_file: Path, tmp_path: Path
) -> None:
    """Without dev sets each epoch's checkpoint becomes best; its resume state says so, so a resumed
    run (here one with nothing left to do) reports the epoch that ``best`` holds."""
    out = tmp_path / "run"
    cfg = TrainConfig(output=str(out), data=[str(pairs_file)], model=str(tiny), batch_size=8, max_length=32,
                      query_max_length=16, progress=False, epochs=2)
    assert train(cfg).best_epoch == 2
    for n in (1, 2):
        assert torch.load(out / f"epoch-{n}" / STATE_FILE, weights_only=False)["best_epoch"] == n
    resumed = train(dataclasses.replace(cfg, resume=str(out)))
    assert (resumed.steps, resumed.best_epoch) == (12, 2)
    assert _records(out, "done")[-1]["best_epoch"] == 2
    assert json.loads((out / "best" / TRAINER_CONFIG).read_text())["training"]["epoch"] == 2
