"""Data parallelism: the gathered loss equals the single-process global-batch loss, gradients
included, and `trainer train` runs under torchrun with two CPU processes on gloo."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from codesearch_trainer.distributed import cleanup_distributed, gather_no_grad, gather_with_grad
from codesearch_trainer.losses import SoftInfoNCELoss, soft_weights

N_PER_RANK, DIM, IN = 4, 8, 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _problem() -> tuple[torch.nn.Linear, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(IN, DIM)
    with torch.no_grad():
        model.weight.copy_(torch.randn(DIM, IN, generator=g))
        model.bias.copy_(torch.randn(DIM, generator=g))
    xq = torch.randn(2 * N_PER_RANK, IN, generator=g)
    xc = torch.randn(2 * N_PER_RANK, IN, generator=g)
    sim = torch.randn(2 * N_PER_RANK, 2 * N_PER_RANK, generator=g) * 3
    return model, xq, xc, sim


def _loss(model: torch.nn.Module, xq: torch.Tensor, xc: torch.Tensor, sim: torch.Tensor, rows: slice) -> torch.Tensor:
    q = F.normalize(model(xq[rows]), dim=-1)
    c = F.normalize(model(xc[rows]), dim=-1)
    c_all = gather_with_grad(c)
    positives = torch.arange(rows.start, rows.stop)
    return SoftInfoNCELoss(1.3, 0.7, 0.1)(q, c_all, sim[rows], positives)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        model, xq, xc, sim = _problem()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        rows = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        loss = _loss(ddp, xq, xc, sim, rows)
        loss.backward()  # DDP averages gradients over the two processes
        gathered = gather_no_grad(torch.full((2, 3), float(rank)))
        torch.save({"loss": loss.detach(), "grad_w": model.weight.grad, "grad_b": model.bias.grad,
                    "gathered": gathered}, f"{out}/rank{rank}.pt")
    finally:
        cleanup_distributed()


def test_gathered_loss_and_gradients_equal_the_global_batch(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    model, xq, xc, sim = _problem()
    full = _loss(model, xq, xc, sim, slice(0, 2 * N_PER_RANK))  # one process, global batch
    full.backward()
    torch.testing.assert_close((r0["loss"] + r1["loss"]) / 2, full.detach())
    for key, ref in (("grad_w", model.weight.grad), ("grad_b", model.bias.grad)):
        torch.testing.assert_close(r0[key], ref)
        torch.testing.assert_close(r1[key], ref)
    assert r0["gathered"].tolist() == [[0.0] * 3] * 2 + [[1.0] * 3] * 2
    # the weights see the global batch: N = 8 columns, so β − α/(N−1) uses N−1 = 7
    w = soft_weights(sim[:N_PER_RANK], 1.3, 0.7, 0.1, positives=torch.arange(N_PER_RANK))
    assert w.shape == (N_PER_RANK, 2 * N_PER_RANK)


def _torchrun() -> list[str]:
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.slow
def test_trainer_train_under_torchrun_gloo(tmp_path: Path) -> None:
    from codesearch_trainer.testing import tiny_bert
    from test_trainer_train import make_dev, make_pairs

    tiny = tiny_bert(tmp_path / "bert")
    pairs = make_pairs(tmp_path / "pairs.jsonl", 40)
    dev = make_dev(tmp_path / "dev")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[1] / "server"), str(Path(__file__).parents[1] / "trainer"),
         os.environ.get("PYTHONPATH", "")]))
    cmd = [*_torchrun(), "--nnodes", "1", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port()), "-m", "codesearch_trainer.cli", "train",
           "--data", str(pairs), "--dev", str(dev), "--model", str(tiny), "--output", str(out),
           "--batch-size", "4", "--epochs", "2", "--loss", "soft-infonce", "--weights", "simcse",
           "--max-length", "32", "--query-max-length", "16", "--log-every", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    config = next(r for r in records if r["type"] == "config")
    assert config["world_size"] == 2 and config["global_batch"] == 8
    train_steps = [r for r in records if r["type"] == "train"]
    assert len(train_steps) == 2 * (40 // 8)  # each step consumed a global batch of 8 pairs
    assert all(r["global_batch"] == 8 for r in train_steps)
    assert (out / "best" / "model.safetensors").is_file()
    assert len([r for r in records if r["type"] == "eval"]) == 2


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
