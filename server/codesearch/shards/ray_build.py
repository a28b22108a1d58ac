"""``codesearch shards build``: one shard per repository, built by Ray tasks and actors.

The driver (this process) plans the embedders from the cluster's resources (:mod:`.plan`), starts
them as actors (one per GPU with the CUDA provider, else CPU actors) and runs one task per
repository. A task walks, chunks and writes its repository's shard on a CPU worker and sends the
chunk texts to the embedder actors (:mod:`.repo_shard`); the driver collects outcomes as tasks end
and rewrites the manifest after each one. A repository that fails is recorded as failed; the
others finish. Repositories and the shards folder must be at the same path on every node.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray

from ..embed.loading import load_encoder
from ..types import Encoder, Vectors
from .manifest import ShardRecord, ShardsManifest, repo_labels
from .plan import EmbedPlan, PlanError, plan_embedders
from .repo_shard import (
    BuildOptions,
    EncoderInfo,
    ShardJob,
    ShardOutcome,
    build_repo_shard,
    describe_error,
    shard_folder_name,
    utc_now,
)

log = logging.getLogger(__name__)

LOCAL = "local"
DEFAULT_OPTIONS = BuildOptions()


class BuildError(RuntimeError):
    """The build as a whole cannot run (no cluster, no usable model); no shard was touched."""


@ray.remote
class EmbedActor:
    """One encoder, loaded once by the engine's own loader, embedding batches of chunk texts."""

    def __init__(self, model: str | None, device: str, threads: int | None) -> None:
        if threads:
            os.environ["CODESEARCH_THREADS"] = str(threads)
        self.encoder: Encoder = load_encoder(model, device)

    def info(self) -> EncoderInfo:
        return EncoderInfo.of(self.encoder)

    def encode(self, texts: list[str]) -> Vectors:
        return self.encoder.encode_documents(texts)


class ActorEmbedders:
    """Batches spread over the embedder actors, ``in_flight`` at a time, results in order."""

    def __init__(self, actors: Sequence[Any], info: EncoderInfo, in_flight: int | None = None) -> None:
        self.actors = list(actors)
        self.info = info
        self.in_flight = in_flight or 2 * len(self.actors)
        self._next = random.randrange(len(self.actors))  # tasks start on different actors

    def encode(self, batches: Sequence[Sequence[str]]) -> Iterator[Vectors]:
        waiting: deque[Any] = deque()
        for batch in batches:
            if len(waiting) >= self.in_flight:
                yield ray.get(waiting.popleft())
            waiting.append(self._actor().encode.remote(list(batch)))
        while waiting:
            yield ray.get(waiting.popleft())

    def _actor(self) -> Any:
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        return actor


@ray.remote(num_cpus=1, max_retries=1)
def build_shard_task(out: str, job: ShardJob, options: BuildOptions, previous: ShardRecord | None,
                     actors: list[Any], info: EncoderInfo) -> ShardOutcome:
    return build_repo_shard(Path(out), job, options, ActorEmbedders(actors, info), previous)


@dataclass(frozen=True)
class RayOptions:
    address: str = LOCAL  # "local" starts Ray in this process; else a cluster address (ray://… or host:port)
    num_cpus: int | None = None  # local only: the CPUs Ray may use (default: all)
    num_gpus: int | None = None  # local only
    temp_dir: str | None = None  # local only: Ray's session files


@contextmanager
def ray_session(options: RayOptions) -> Iterator[None]:
    """Use this process's Ray connection if it has one; else start or join one, and stop it after."""
    if ray.is_initialized():
        yield
        return
    common: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if options.address == LOCAL:
            ray.init(num_cpus=options.num_cpus, num_gpus=options.num_gpus, _temp_dir=options.temp_dir, **common)
        else:
            ray.init(address=options.address, **common)
    except (ConnectionError, RuntimeError, ValueError, OSError) as exc:  # OSError: e.g. a too long socket path
        raise BuildError(f"cannot start or reach Ray at {options.address!r}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


@dataclass
class BuildReport:
    out: Path
    plan: EmbedPlan
    info: EncoderInfo
    outcomes: list[ShardOutcome] = field(default_factory=list)
    startup_s: float = 0.0  # Ray up and the embedders' models loaded
    wall_s: float = 0.0  # first repository started → last one ended

    def of(self, action: str) -> list[ShardRecord]:
        return [o.record for o in self.outcomes if o.action == action]

    @property
    def embedded_chunks(self) -> int:
        """Chunks of the shards built this time (a rebuild re-embeds only what changed, so this is an upper bound
        on the chunks that went through the embedders)."""
        return sum(r.embedded for r in self.of("built"))

    @property
    def chunks_per_s(self) -> float:
        return self.embedded_chunks / self.wall_s if self.wall_s > 0 else 0.0


def build_shards(out: Path, sources: Sequence[Path | str], options: BuildOptions = DEFAULT_OPTIONS, *,
                 device: str = "auto", ray_options: RayOptions = RayOptions(), max_actors: int | None = None,
                 on_outcome: Callable[[ShardOutcome], None] | None = None) -> BuildReport:
    out = Path(out).expanduser().resolve()
    wanted = list(dict.fromkeys(str(Path(s).expanduser().resolve()) for s in sources))
    if not wanted:
        raise BuildError("no repository was given")
    manifest = ShardsManifest.read_or_empty(out)
    labels = repo_labels([*manifest.by_source(), *wanted])
    manifest = manifest.relabelled(labels)
    jobs = [ShardJob(source=s, repo=labels[s], shard=shard_folder_name(Path(s))) for s in wanted]
    started = time.monotonic()
    with ray_session(ray_options):
        nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
        try:
            plan = plan_embedders(nodes, device, max_actors)
        except PlanError as exc:
            raise BuildError(str(exc)) from exc
        actors = [EmbedActor.options(num_cpus=plan.cpus_per_actor, num_gpus=plan.gpus_per_actor)  # type: ignore[attr-defined]
                  .remote(options.model, plan.device, plan.threads) for _ in range(plan.actors)]
        try:
            info = _embedders_info(actors)
            report = BuildReport(out, plan, info, startup_s=time.monotonic() - started)
            _run(report, manifest, jobs, options, actors, _concurrency(nodes, plan), on_outcome)
        finally:
            for actor in actors:
                ray.kill(actor)
    return report


def _embedders_info(actors: Sequence[Any]) -> EncoderInfo:
    try:
        infos: list[EncoderInfo] = ray.get([actor.info.remote() for actor in actors])
    except ray.exceptions.RayError as exc:
        raise BuildError(f"the embedders could not load the model: {describe_error(exc)}") from exc
    if len({i.model_key for i in infos}) != 1:
        raise BuildError(f"the embedders loaded different models: {sorted({i.model_key for i in infos})}")
    return infos[0]


def _concurrency(nodes: Sequence[dict[str, float]], plan: EmbedPlan) -> int:
    """Repository tasks kept running: one per CPU the embedders leave, plus one to overlap chunking
    with embedding (a task waiting for vectors gives its CPU back to Ray)."""
    cpus = sum(node.get("CPU", 0.0) for node in nodes)
    return max(1, int(cpus - plan.actors * plan.cpus_per_actor)) + 1


def _run(report: BuildReport, manifest: ShardsManifest, jobs: Sequence[ShardJob], options: BuildOptions,
         actors: list[Any], concurrency: int, on_outcome: Callable[[ShardOutcome], None] | None) -> None:
    previous = manifest.by_source()
    queue = deque(jobs)
    running: dict[Any, ShardJob] = {}
    first = time.monotonic()
    out = str(report.out)
    while queue or running:
        while queue and len(running) < concurrency:
            job = queue.popleft()
            ref = build_shard_task.remote(out, job, options, previous.get(job.source), actors, report.info)
            running[ref] = job
        done, _ = ray.wait(list(running), num_returns=1)
        job = running.pop(done[0])
        outcome = _outcome(done[0], job, report.info)
        manifest = manifest.with_record(outcome.record)
        manifest = ShardsManifest(manifest.records, utc_now())
        manifest.write(report.out)
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    report.wall_s = time.monotonic() - first


def _outcome(ref: Any, job: ShardJob, info: EncoderInfo) -> ShardOutcome:
    """The task's outcome; a task that died (its worker crashed) counts as a failed repository."""
    try:
        outcome: ShardOutcome = ray.get(ref)
        return outcome
    except ray.exceptions.RayError as exc:
        record = ShardRecord(repo=job.repo, source=job.source, shard=job.shard, status="failed",
                             model_key=info.model_key, built_at=utc_now(), error=describe_error(exc))
        return ShardOutcome(record, "failed")
