"""How many embedding actors a build starts, and on what: decided from the cluster's resources alone.

With GPUs in the cluster: one actor per GPU (``num_gpus=1``, so Ray gives each its own device through
``CUDA_VISIBLE_DEVICES``), running the CUDA provider. Without: CPU actors of a few cores each, leaving
one CPU per node to the tasks that walk and chunk repositories. Pure, so it is tested on made-up
clusters; :mod:`.ray_build` feeds it ``ray.nodes()``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MAX_CPUS_PER_EMBEDDER = 4  # ONNX Runtime's intra-op threads scale poorly past a few cores per session
CHUNKING_CPUS_PER_NODE = 1


class PlanError(RuntimeError):
    """The cluster cannot run what was asked (e.g. ``--device cuda`` without a GPU)."""


@dataclass(frozen=True)
class EmbedPlan:
    device: str  # cuda | cpu: what each actor asks the engine's model loader for
    actors: int
    cpus_per_actor: float
    gpus_per_actor: float
    threads: int | None  # ONNX intra-op threads of a CPU actor; None leaves it to the runtime
    reason: str

    def describe(self) -> str:
        each = f"{self.gpus_per_actor:g} GPU" if self.gpus_per_actor else f"{self.cpus_per_actor:g} CPU"
        return f"{self.actors} {self.device} embedder(s), {each} each: {self.reason}"


def plan_embedders(nodes: Sequence[Mapping[str, float]], device: str = "auto",
                   max_actors: int | None = None) -> EmbedPlan:
    """``nodes``: each live node's resources (``{"CPU": 16, "GPU": 4, ...}``); ``device``: auto | cpu | cuda."""
    if device not in ("auto", "cpu", "cuda"):
        raise PlanError(f"device must be auto, cpu or cuda, not {device!r}")
    if max_actors is not None and max_actors < 1:
        raise PlanError("at least one embedder is needed")
    gpus = sum(int(node.get("GPU", 0)) for node in nodes)
    if device == "cuda" and gpus == 0:
        raise PlanError("--device cuda was asked for, but the Ray cluster has no GPU")
    if gpus and device != "cpu":
        count = _cap(gpus, max_actors)
        return EmbedPlan("cuda", count, 1.0, 1.0, None,
                         f"{gpus} GPU(s) in the cluster: one embedder per GPU, CUDA provider")
    why = "device cpu asked for" if gpus else "no GPU in the cluster"
    return _cpu_plan(nodes, max_actors, why)


def _cpu_plan(nodes: Sequence[Mapping[str, float]], max_actors: int | None, why: str) -> EmbedPlan:
    usable = [int(node.get("CPU", 0)) - CHUNKING_CPUS_PER_NODE for node in nodes]
    usable = [u for u in usable if u >= 1]
    if not usable:
        # One CPU in all: an embedder that reserves nothing, sharing the core with the chunking task.
        return EmbedPlan("cpu", 1, 0.0, 0.0, 1, f"{why}; a single CPU: one embedder shares it")
    smallest = min(usable)
    per = smallest // math.ceil(smallest / MAX_CPUS_PER_EMBEDDER)
    count = _cap(sum(u // per for u in usable), max_actors)
    return EmbedPlan("cpu", count, float(per), 0.0, per,
                     f"{why}: CPU embedders of {per} core(s), {CHUNKING_CPUS_PER_NODE} CPU per node left for chunking")


def _cap(count: int, max_actors: int | None) -> int:
    return min(count, max_actors) if max_actors is not None else count
