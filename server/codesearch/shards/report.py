"""How a shards build is told to a person (one line per repository, a summary) and as JSON."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from rich.markup import escape

from .ray_build import BuildReport
from .repo_shard import ShardOutcome


def describe_outcome(outcome: ShardOutcome) -> str:
    r = outcome.record
    if outcome.action == "failed":
        return f"[red]failed[/]    {escape(r.repo)}: {escape(r.error)}"
    if outcome.action == "unchanged":
        return f"unchanged {escape(r.repo)} ({r.content_kind} {r.content_hash[:12]})"
    rate = f", {r.embedded / r.embed_s:.1f} chunks/s" if r.embed_s > 0 else ""
    return (f"built     {escape(r.repo)}: {r.files} files, {r.chunks} chunks, {r.embedded} embedded in {r.build_s:.1f}s"
            f" (embedding {r.embed_s:.1f}s{rate}); {r.index_bytes / 1e6:.1f} MB")


def summarize(report: BuildReport) -> str:
    counts = ", ".join(f"{len(report.of(a))} {a}" for a in ("built", "unchanged", "failed"))
    manifest = escape(str(report.out / "shards.json"))
    return (f"{len(report.outcomes)} repositories: {counts}; {report.wall_s:.1f}s after {report.startup_s:.1f}s "
            f"of start-up\nembedders: {report.plan.describe()}\nmodel: {escape(report.info.model_id)} "
            f"(key {report.info.model_key}) on {report.info.provider}\nmanifest: {manifest}")


def report_json(report: BuildReport) -> dict[str, Any]:
    return {
        "out": str(report.out), "plan": asdict(report.plan), "model": asdict(report.info),
        "startup_s": round(report.startup_s, 3), "wall_s": round(report.wall_s, 3),
        "embedded_chunks": report.embedded_chunks, "chunks_per_s": round(report.chunks_per_s, 2),
        "repos": [{"action": o.action, **o.record.to_json()} for o in report.outcomes],
    }
