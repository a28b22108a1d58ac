"""Distillation: the loss on tiny tensors, students made from a teacher's config, a tiny run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from codesearch_trainer.cli import main
from codesearch_trainer.losses import DistillationLoss, InfoNCELoss, distillation_terms
from codesearch_trainer.model import TRAINER_CONFIG, load_encoder
from codesearch_trainer.student import Teacher, even_layers, make_student, save_student
from codesearch_trainer.testing import tiny_bert
from codesearch_trainer.train import TrainConfig, train
from test_trainer_train import make_pairs


def _unit(*rows: list[float]) -> torch.Tensor:
    return F.normalize(torch.tensor(rows, dtype=torch.float32), dim=-1)


# --- the loss ---------------------------------------------------------------------------------


def test_distillation_terms_known_values() -> None:
    # teacher: each query points at its own code; student: the codes are swapped
    tq = tc = _unit([1.0, 0.0], [0.0, 1.0])
    q = _unit([1.0, 0.0], [0.0, 1.0])
    c = _unit([0.0, 1.0], [1.0, 0.0])
    kd, reg = distillation_terms(q, c, tq, tc, scale=1.0, teacher_scale=1.0)
    # row 0: teacher softmax([1, 0]) = (σ, 1−σ), student softmax([0, 1]) = (1−σ, σ)
    sig = 1 / (1 + math.exp(-1))
    expected_kd = sig * math.log(sig / (1 - sig)) + (1 - sig) * math.log((1 - sig) / sig)
    assert float(kd) == pytest.approx(expected_kd, rel=1e-6)
    # queries match exactly; each code is off by ‖(−1, 1)‖² = 2: (0 + 0 + 2 + 2) / 4 rows
    assert float(reg) == pytest.approx(1.0, rel=1e-6)


def test_distillation_terms_vanish_when_the_student_is_the_teacher() -> None:
    g = torch.Generator().manual_seed(0)
    q, c = F.normalize(torch.randn(5, 8, generator=g), dim=-1), F.normalize(torch.randn(7, 8, generator=g), dim=-1)
    kd, reg = distillation_terms(q, c, q.clone(), c.clone())
    assert float(kd) == pytest.approx(0.0, abs=1e-6) and float(reg) == pytest.approx(0.0, abs=1e-12)


def test_gradient_moves_the_student_towards_the_teacher() -> None:
    g = torch.Generator().manual_seed(1)
    tq, tc = F.normalize(torch.randn(4, 6, generator=g), dim=-1), F.normalize(torch.randn(4, 6, generator=g), dim=-1)
    q = F.normalize(torch.randn(4, 6, generator=g), dim=-1).requires_grad_(True)
    c = F.normalize(torch.randn(4, 6, generator=g), dim=-1).requires_grad_(True)
    loss = DistillationLoss(contrastive=0.0, kd=0.0, regression=1.0)(q, c, tq, tc)
    loss.backward()
    assert q.grad is not None and c.grad is not None
    # regression: the gradient is 2 (s − t) / rows, so −grad points from the student to the teacher
    torch.testing.assert_close(-q.grad, 2 * (tq - q.detach()) / 8)
    # a small step along −grad lowers both terms
    kd_loss = DistillationLoss(contrastive=0.0, kd=1.0, regression=0.0)
    q2 = q.detach().clone().requires_grad_(True)
    before = kd_loss(q2, c.detach(), tq, tc)
    before.backward()
    assert q2.grad is not None
    after = kd_loss(q2.detach() - 0.1 * q2.grad, c.detach(), tq, tc)
    assert float(after) < float(before.detach())


def test_total_is_the_weighted_sum_and_the_teacher_gets_no_gradient() -> None:
    g = torch.Generator().manual_seed(2)
    q = F.normalize(torch.randn(3, 4, generator=g), dim=-1).requires_grad_(True)
    c = F.normalize(torch.randn(3, 4, generator=g), dim=-1)
    tq = F.normalize(torch.randn(3, 4, generator=g), dim=-1).requires_grad_(True)
    tc = F.normalize(torch.randn(3, 4, generator=g), dim=-1).requires_grad_(True)
    fn = DistillationLoss(contrastive=0.5, kd=2.0, regression=3.0)
    total = fn(q, c, tq, tc)
    kd, reg = distillation_terms(q, c, tq, tc)
    expected = 0.5 * InfoNCELoss()(q, c) + 2.0 * kd + 3.0 * reg
    assert float(total.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert set(fn.last) == {"loss_infonce", "loss_kd", "loss_regression"}
    total.backward()
    assert q.grad is not None and tq.grad is None and tc.grad is None


def test_distillation_rejects_mismatched_batches_and_bad_weights() -> None:
    q = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="same texts"):
        distillation_terms(q, q, torch.zeros(3, 4), q)
    with pytest.raises(ValueError, match="≥ 0"):
        DistillationLoss(kd=-1.0)
    with pytest.raises(ValueError, match="not all 0"):
        DistillationLoss(contrastive=0.0, kd=0.0, regression=0.0)


# --- students ---------------------------------------------------------------------------------


def test_even_layers() -> None:
    assert even_layers(6, 3) == [0, 3, 5]
    assert even_layers(6, 4) == [0, 2, 4, 5]
    assert even_layers(6, 2) == [0, 5]
    assert even_layers(6, 6) == list(range(6))
    assert even_layers(6, 1) == [5]
    with pytest.raises(ValueError):
        even_layers(6, 7)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 4-layer BERT as the teacher."""
    return tiny_bert(tmp_path_factory.mktemp("teacher") / "bert", seed=3, dropout=0.0, num_layers=4)


def test_student_keeps_the_chosen_teacher_layers(teacher_dir: Path, tmp_path: Path) -> None:
    teacher = load_encoder(teacher_dir)
    student, kept = make_student(teacher_dir, layers=[0, 3])
    assert kept == [0, 3]
    assert student.transformer.config.num_hidden_layers == 2
    t_state, s_state = teacher.transformer.state_dict(), student.transformer.state_dict()
    for new, old in enumerate(kept):
        for key, value in s_state.items():
            if key.startswith(f"encoder.layer.{new}."):
                torch.testing.assert_close(value, t_state[key.replace(f"layer.{new}.", f"layer.{old}.")])
    torch.testing.assert_close(s_state["embeddings.word_embeddings.weight"],
                               t_state["embeddings.word_embeddings.weight"])
    assert student.settings == teacher.settings
    out = save_student(student, kept, str(teacher_dir), tmp_path / "student")
    reloaded = load_encoder(out)
    assert reloaded.transformer.config.num_hidden_layers == 2
    record = json.loads((out / TRAINER_CONFIG).read_text())
    assert record["student"] == {"teacher": str(teacher_dir), "layers": [0, 3]}
    texts = ["read the file", "def parse(x):\n    return json.load(x)\n"]
    torch.testing.assert_close(reloaded.encode(texts), student.encode(texts))


def test_student_command_and_bad_layers(teacher_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = CliRunner().invoke(main, ["student", str(teacher_dir), str(out), "--num-layers", "2",
                                       "--max-length", "64"])
    assert result.exit_code == 0, result.output
    assert "layers [0, 3]" in result.output
    assert load_encoder(out).settings.max_length == 64
    bad = CliRunner().invoke(main, ["student", str(teacher_dir), str(tmp_path / "x"), "--layers", "2,1"])
    assert bad.exit_code != 0 and "increasing" in bad.output


def test_teacher_is_frozen_and_memoises(teacher_dir: Path) -> None:
    teacher = Teacher(str(teacher_dir))
    assert not any(p.requires_grad for p in teacher.encoder.parameters())
    a = teacher.embed(["read the file", "sort the list"], 32)
    b = teacher.embed(["sort the list"], 32)
    torch.testing.assert_close(a[1], b[0])
    assert len(teacher._memo) == 2
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))


def test_distillation_run_pulls_the_student_towards_the_teacher(teacher_dir: Path, tmp_path: Path) -> None:
    student_dir = tmp_path / "student"
    save_student(*make_student(teacher_dir, num_layers=2), str(teacher_dir), student_dir)
    pairs = make_pairs(tmp_path / "pairs.jsonl", 96)
    texts = [json.loads(line)["code"] for line in pairs.read_text().splitlines()[:16]]
    teacher = load_encoder(teacher_dir).encode(texts, max_length=32)

    def distance(folder: Path) -> float:  # mean squared distance to the teacher's embeddings
        return float((load_encoder(folder).encode(texts, max_length=32) - teacher).pow(2).sum(dim=1).mean())

    out = tmp_path / "run"
    cfg = TrainConfig(output=str(out), data=[str(pairs)], model=str(student_dir), teacher=str(teacher_dir),
                      contrastive_weight=0.0, distill_kd=1.0, distill_regression=10.0, epochs=3,
                      batch_size=8, lr=1e-3, warmup_ratio=0.0, max_length=32, query_max_length=16,
                      log_every=1, progress=False, seed=1)
    result = train(cfg)
    before, after = distance(student_dir), distance(result.best)
    assert after < 0.5 * before, (before, after)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if r["type"] == "train"]
    assert {"loss_infonce", "loss_kd", "loss_regression"} <= set(train_records[-1])
    saved = json.loads((out / "best" / TRAINER_CONFIG).read_text())
    assert saved["training"]["teacher"] == str(teacher_dir)


def test_teacher_needs_plain_infonce(tmp_path: Path) -> None:
    cfg = TrainConfig(output=str(tmp_path), data=["x"], teacher="t", loss="soft-infonce")
    with pytest.raises(ValueError, match="--loss infonce"):
        cfg.validate()


def test_interpolate_two_checkpoints(teacher_dir: Path, tmp_path: Path) -> None:
    a = save_student(*make_student(teacher_dir, layers=[0, 3]), str(teacher_dir), tmp_path / "a")
    b_enc, kept = make_student(teacher_dir, layers=[1, 2])
    b = save_student(b_enc, kept, str(teacher_dir), tmp_path / "b")
    result = CliRunner().invoke(main, ["interpolate", str(a), str(b), str(tmp_path / "mix"), "--weight", "0.25"])
    assert result.exit_code == 0, result.output
    sa, sb = load_encoder(a).transformer.state_dict(), load_encoder(b).transformer.state_dict()
    mixed = load_encoder(tmp_path / "mix").transformer.state_dict()
    key = "encoder.layer.1.output.dense.weight"
    torch.testing.assert_close(mixed[key], 0.25 * sa[key] + 0.75 * sb[key])
    record = json.loads((tmp_path / "mix" / TRAINER_CONFIG).read_text())
    assert record["interpolation"]["weight_of_a"] == 0.25 and record["student"]["layers"] == [0, 3]
    other = save_student(*make_student(teacher_dir, layers=[0]), str(teacher_dir), tmp_path / "one")
    bad = CliRunner().invoke(main, ["interpolate", str(a), str(other), str(tmp_path / "x"), "--weight", "0.5"])
    assert bad.exit_code != 0 and "same architecture" in bad.output
