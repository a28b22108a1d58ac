"""Index shards: planning the embedders, building shards (locally and on Ray in local mode with 2 CPUs),
skipping unchanged repositories, reporting a failing one, and searching shards together read-only."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from codesearch.cli import main
from codesearch.engine import Engine, EngineError, IndexReadOnly
from codesearch.index.vector_index import VectorIndex
from codesearch.shards.content import clean_git_head, repo_content
from codesearch.shards.manifest import ShardRecord, ShardsManifest, repo_labels
from codesearch.shards.plan import PlanError, plan_embedders
from codesearch.shards.repo_shard import BuildOptions, LocalEmbedders, ShardJob, build_repo_shard, shard_folder_name
from codesearch.shards.search import ShardSet
from codesearch.types import Vectors
from codesearch.walk.walker import WalkOptions
from fakes import CRASH_QUERY, FakeEncoder, fake_encoder_env
from fixture_repo import make_repo

OTHER_REPO = {
    "lib/strings.py": '"""Text helpers."""\n\n\ndef slugify_title(title: str) -> str:\n'
                      '    """Turn a title into a URL slug."""\n    return "-".join(title.lower().split())\n',
    "lib/money.py": "def format_money(cents: int) -> str:\n    return f\"${cents / 100:.2f}\"\n",
}
FAILING_REPO = {"lib/bad.py": f"def explode():\n    return '{CRASH_QUERY}'\n"}


def git_commit(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm",
                    "initial"], check=True)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}


# planning -------------------------------------------------------------------------------------------------
def test_one_cuda_embedder_per_gpu_when_the_cluster_has_gpus() -> None:
    plan = plan_embedders([{"CPU": 16, "GPU": 4}, {"CPU": 8, "GPU": 2}, {"CPU": 4}])
    assert (plan.device, plan.actors, plan.gpus_per_actor, plan.cpus_per_actor) == ("cuda", 6, 1.0, 1.0)
    assert plan.threads is None and "6 GPU" in plan.reason
    assert plan_embedders([{"CPU": 16, "GPU": 4}], max_actors=2).actors == 2
    assert plan_embedders([{"CPU": 16, "GPU": 1}], device="cuda").device == "cuda"
    forced = plan_embedders([{"CPU": 16, "GPU": 4}], device="cpu")
    assert forced.device == "cpu" and forced.gpus_per_actor == 0 and "device cpu" in forced.reason


def test_cpu_embedders_leave_a_cpu_per_node_for_chunking() -> None:
    ci = plan_embedders([{"CPU": 2.0, "memory": 1e9}])  # CI and the tests: local mode with 2 CPUs
    assert (ci.device, ci.actors, ci.cpus_per_actor, ci.threads) == ("cpu", 1, 1.0, 1)
    laptop = plan_embedders([{"CPU": 8}])  # 7 usable: two actors of 3 cores
    assert (laptop.actors, laptop.cpus_per_actor, laptop.threads) == (2, 3.0, 3)
    cluster = plan_embedders([{"CPU": 17}, {"CPU": 17}])  # 16 usable each: four actors of 4 per node
    assert (cluster.actors, cluster.cpus_per_actor) == (8, 4.0)
    single = plan_embedders([{"CPU": 1}])
    assert (single.actors, single.cpus_per_actor) == (1, 0.0)
    with pytest.raises(PlanError, match="no GPU"):
        plan_embedders([{"CPU": 8}], device="cuda")
    with pytest.raises(PlanError):
        plan_embedders([{"CPU": 8}], device="tpu")


# manifest and content ----------------------------------------------------------------------------------------
def test_repo_labels_are_names_made_unique_by_their_parents() -> None:
    labels = repo_labels(["/src/a/utils", "/src/b/utils", "/src/web", "/x/b/utils"])
    assert labels == {"/src/a/utils": "a/utils", "/src/b/utils": "src/b/utils", "/src/web": "web",
                      "/x/b/utils": "x/b/utils"}


def test_manifest_round_trip(tmp_path: Path) -> None:
    record = ShardRecord(repo="a", source="/src/a", shard="shards/a-1", files=3)
    manifest = ShardsManifest().with_record(record).with_record(ShardRecord(repo="b", source="/src/b", shard="x"))
    manifest.write(tmp_path)
    again = ShardsManifest.read(tmp_path)
    assert again.by_source()["/src/a"] == record and len(again.records) == 2
    assert again.with_record(ShardRecord(repo="a", source="/src/a", shard="y")).by_source()["/src/a"].shard == "y"


def test_content_is_the_clean_git_head_else_a_hash_of_the_walked_files(tmp_path: Path) -> None:
    options = WalkOptions()
    plain = make_repo(tmp_path / "plain", OTHER_REPO)
    first = repo_content(plain, options)
    assert first.kind == "files" and repo_content(plain, options) == first
    (plain / "lib/strings.py").write_text("def changed():\n    pass\n")
    assert repo_content(plain, options).digest != first.digest

    checkout = make_repo(tmp_path / "checkout", OTHER_REPO)
    git_commit(checkout)
    head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert repo_content(checkout, options).kind == "git" and clean_git_head(checkout) == head
    (checkout / "lib/new.py").write_text("x = 1\n")  # untracked: no longer described by HEAD
    assert clean_git_head(checkout) is None and repo_content(checkout, options).kind == "files"
    assert clean_git_head(checkout / "lib") is None  # a folder inside a checkout is not its top


# a shard is the engine's own index, opened read-only ---------------------------------------------------
def local_shard(out: Path, source: Path, encoder: FakeEncoder, previous: ShardRecord | None = None) -> Any:
    job = ShardJob(source=str(source.resolve()), repo=source.name, shard=shard_folder_name(source.resolve()))
    return build_repo_shard(out, job, BuildOptions(batch_size=8, fetch_batches=2), LocalEmbedders(encoder), previous)


def table(db: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return sorted(con.execute(sql).fetchall())
    finally:
        con.close()


def test_a_shard_holds_what_the_engine_writes_and_is_searched_without_writing(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    encoder = FakeEncoder()
    outcome = local_shard(tmp_path / "out", repo, encoder)
    assert outcome.action == "built", outcome.record.error
    record = outcome.record
    assert record.files >= 8 and record.chunks == record.embedded > 0 and record.model_key == "fake-1"
    shard = tmp_path / "out" / record.shard
    assert sorted(p.name for p in shard.iterdir()) == ["index.db", "vectors.hnsw", "vectors.hnsw.json"]

    workspace = Engine(repo, encoder=encoder, index_dir=tmp_path / "workspace")
    with workspace.writing():
        workspace.update()
    workspace.close()
    queries = {
        "files": "SELECT path, size, mtime_ns, hash, language, parse_failed FROM files",
        "chunks": "SELECT path, language, kind, symbol, container, start_line, end_line, part, text, embed_hash "
                  "FROM chunks",
        "vectors": "SELECT embed_hash, model_key, vector FROM vectors",
        "fts": "SELECT name, path, body FROM chunks_fts",
        "meta": "SELECT key, value FROM meta WHERE key NOT IN ('instance', 'writer_open')",
    }
    for name, sql in queries.items():
        assert table(shard / "index.db", sql) == table(tmp_path / "workspace" / "index.db", sql), name
    instance = table(shard / "index.db", "SELECT value FROM meta WHERE key='instance'")[0][0]
    graph = VectorIndex.load(shard / "vectors.hnsw", f"{instance}:fake-1", encoder.dimension)
    assert len(graph) == record.embedded

    before = snapshot(shard)
    engine = Engine.open_read_only(shard, encoder=encoder)
    assert engine.root == repo.resolve()
    found = engine.search("parse_retry_after").hits[0]
    assert (found.path, found.symbol) == ("src/http/retry.py", "parse_retry_after")
    assert engine.search("ConnectionPool acquire idle socket").hits
    assert engine.status().pending == 0
    with pytest.raises(IndexReadOnly):
        engine.sync()
    with pytest.raises(IndexReadOnly), engine.writing():
        pass
    engine.close()
    assert snapshot(shard) == before  # nothing written, no lock, journal or WAL file made

    with pytest.raises(IndexReadOnly):
        engine.clean()
    with pytest.raises(EngineError, match="no index"):
        Engine.open_read_only(tmp_path / "nowhere")


class CountingEncoder(FakeEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.queries = 0

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        self.queries += 1
        return super().encode_queries(texts)


def test_shards_are_searched_together_each_hit_naming_its_repo(tmp_path: Path) -> None:
    out = tmp_path / "out"
    one, other = make_repo(tmp_path / "one"), make_repo(tmp_path / "other", OTHER_REPO)
    records = [local_shard(out, r, FakeEncoder()).record for r in (one, other)]
    failed = ShardRecord(repo="broken", source=str(tmp_path / "broken"), shard="shards/broken", status="failed",
                         error="RuntimeError: boom")
    ShardsManifest((*records, failed)).write(out)

    encoder = CountingEncoder()
    shards = ShardSet.open(out, encoder=encoder)
    try:
        assert shards.repos == ["one", "other"]
        assert shards.problems == ["broken: not mounted, its last build failed: RuntimeError: boom"]
        result = shards.search("slugify_title", limit=5)
        assert (result.hits[0].repo, result.hits[0].hit.path) == ("other", "lib/strings.py")
        assert result.hits[0].root == (tmp_path / "other").resolve() and result.searched == 2
        assert encoder.queries <= 1  # one query embedding for every shard
        retry = shards.search("parse_retry_after", limit=3)
        assert (retry.hits[0].repo, retry.hits[0].hit.path) == ("one", "src/http/retry.py")
        assert retry.hits[0].to_json() == {"repo": "one", **retry.hits[0].hit.to_json()}
        only = shards.search("slugify_title", repos=["one"])
        assert {h.repo for h in only.hits} <= {"one"} and only.searched == 1
        ts = shards.search("cart total", languages=["typescript"])
        assert ts.hits and {h.hit.language for h in ts.hits} == {"typescript"}
        lexical = shards.search("format_money", mode="lexical")
        assert lexical.hits[0].hit.symbol == "format_money" and not lexical.dense_used
    finally:
        shards.close()
    shallow = ShardSet.open(out, encoder=encoder, candidates=5)
    try:
        assert all(s.engine.weights.dense_candidates == 5 for s in shallow.shards)
        assert shallow.search("slugify_title").hits[0].hit.symbol == "slugify_title"
    finally:
        shallow.close()
    with pytest.raises(EngineError, match="not a shards folder"):
        ShardSet.open(tmp_path / "one", encoder=encoder)


# Ray, local mode, 2 CPUs -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Ray instance for the module: 2 CPUs, no dashboard, its files in the test's tmp dir; workers
    load the fake encoder through the engine's hook (their environment is copied when Ray starts)."""
    ray = pytest.importorskip("ray")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in fake_encoder_env({"PYTHONPATH": os.environ.get("PYTHONPATH", "")}).items():
            mp.setenv(key, value)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
                 _temp_dir=str(tmp_path_factory.mktemp("ray")))
        try:
            yield
        finally:
            ray.shutdown()


def build(out: Path, repos: Sequence[Path | str], **kwargs: Any) -> Any:
    from codesearch.shards.ray_build import build_shards

    return build_shards(out, repos, BuildOptions(batch_size=16), **kwargs)


@pytest.mark.timeout(300)
def test_ray_builds_shards_skips_unchanged_repos_and_reports_a_failing_one(ray_local: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    service = make_repo(tmp_path / "service")
    git_commit(service)
    helpers = make_repo(tmp_path / "helpers", OTHER_REPO)

    first = build(out, [service, helpers])
    assert sorted((o.action, o.record.repo) for o in first.outcomes) == [("built", "helpers"), ("built", "service")]
    assert first.plan.device == "cpu" and first.plan.actors == 1 and first.info.model_key == "fake-1"
    records = ShardsManifest.read(out).by_source()
    assert records[str(service.resolve())].content_kind == "git"
    assert records[str(helpers.resolve())].content_kind == "files"
    assert all(r.ok and r.chunks == r.embedded > 0 and r.model_key == "fake-1" for r in records.values())

    with ShardSetOf(out) as shards:
        hit = shards.search("slugify_title").hits[0]
        assert (hit.repo, hit.hit.path, hit.hit.symbol) == ("helpers", "lib/strings.py", "slugify_title")
        hit = shards.search("parse_retry_after").hits[0]
        assert (hit.repo, hit.hit.path) == ("service", "src/http/retry.py")

    again = build(out, [service, helpers])
    assert sorted(o.action for o in again.outcomes) == ["unchanged", "unchanged"]
    (helpers / "lib/slug.py").write_text("def dasherize_words(words):\n    return '-'.join(words)\n")
    third = build(out, [service, helpers])
    assert {o.record.repo: o.action for o in third.outcomes} == {"service": "unchanged", "helpers": "built"}
    assert ShardsManifest.read(out).by_source()[str(helpers.resolve())].files == 3

    from codesearch.shards.ray_build import BuildError

    with pytest.raises(BuildError, match="no GPU"):
        build(out, [helpers], device="cuda")

    broken = make_repo(tmp_path / "broken", FAILING_REPO)
    fourth = build(out, [broken, tmp_path / "missing", helpers, service])
    actions = {o.record.repo: o.action for o in fourth.outcomes}
    assert actions == {"broken": "failed", "missing": "failed", "helpers": "unchanged", "service": "unchanged"}
    errors = {o.record.repo: o.record.error for o in fourth.outcomes}
    assert errors["broken"] == "RuntimeError: the fake encoder was asked to fail"
    assert "is not a folder" in errors["missing"]
    with ShardSetOf(out) as shards:
        assert shards.repos == ["helpers", "service"] and len(shards.problems) == 2
        assert shards.search("dasherize_words").hits[0].repo == "helpers"


class ShardSetOf:
    def __init__(self, out: Path) -> None:
        self.shards = ShardSet.open(out, encoder=FakeEncoder())

    def __enter__(self) -> ShardSet:
        return self.shards

    def __exit__(self, *exc: object) -> None:
        self.shards.close()


@pytest.mark.timeout(300)
def test_cli_builds_shards_and_searches_them(ray_local: None, tmp_path: Path) -> None:
    out = tmp_path / "out"
    one, other = make_repo(tmp_path / "one"), make_repo(tmp_path / "other", OTHER_REPO)
    broken = make_repo(tmp_path / "broken", FAILING_REPO)
    result = CliRunner().invoke(main, ["shards", "build", "--out", str(out), "--json", str(one), str(other),
                                       str(broken)])
    assert result.exit_code == 1, result.output  # a repository failed; the others were built
    report = json.loads(result.stdout)
    assert {r["repo"]: r["action"] for r in report["repos"]} == {"one": "built", "other": "built", "broken": "failed"}
    assert report["plan"]["device"] == "cpu" and report["model"]["model_key"] == "fake-1"
    assert "failed    broken: RuntimeError" in result.stderr and "1 failed" in result.stderr

    listed = CliRunner().invoke(main, ["shards", "list", str(out), "--json"])
    assert [r["repo"] for r in json.loads(listed.stdout)] == ["broken", "one", "other"]

    # `codesearch search --shards` in a fresh process: no Ray, no torch
    env = fake_encoder_env(dict(os.environ))
    done = subprocess.run([sys.executable, "-m", "codesearch.cli", "search", "slugify_title", "--shards", str(out),
                           "--json"], capture_output=True, text=True, env=env, timeout=120, check=True)
    hits = json.loads(done.stdout)
    assert (hits[0]["repo"], hits[0]["path"], hits[0]["symbol"]) == ("other", "lib/strings.py", "slugify_title")
    assert "broken: not mounted" in done.stderr
    text = subprocess.run([sys.executable, "-m", "codesearch.cli", "search", "ConnectionPool", "--shards", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    assert "one:src/http/pool.py" in text


def test_search_path_imports_neither_ray_nor_torch() -> None:
    code = ("import sys, codesearch.cli, codesearch.shards.search, codesearch.lsp.server; "
            "bad = [m for m in ('ray', 'torch') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
