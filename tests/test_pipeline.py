"""The embedding pipeline: order, backpressure, errors, cancellation; the worker layout; batched writes."""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from codesearch.embed.pipeline import EmbeddingPipeline, WholeBatches, staged
from codesearch.embed.sessions import CPU, CUDA, Layout, choose_layout, layout_override
from codesearch.engine import Engine
from fakes import FakeEncoder
from fixture_repo import make_repo


@dataclass(frozen=True)
class Batch:
    rows: tuple[int, ...]
    payload: list[str]


class SlowStaged:
    """A staged encoder whose vector for text ``"t<n>"`` is ``[n, 0, ...]``; each run sleeps a while."""

    def __init__(self, workers: int = 3, batch_size: int = 2, delay_s: float = 0.01, jitter: bool = True,
                 fail_on: str | None = None) -> None:
        self.workers = workers
        self.batch_size = batch_size
        self.delay_s = delay_s
        self.jitter = jitter
        self.fail_on = fail_on
        self.rng = random.Random(3)
        self.running = 0
        self.running_peak = 0
        self.lock = threading.Lock()

    def prepare_documents(self, texts: Sequence[str]) -> list[Batch]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # "sorted by length", as the encoder does
        return [Batch(tuple(order[s:s + self.batch_size]), [texts[i] for i in order[s:s + self.batch_size]])
                for s in range(0, len(order), self.batch_size)]

    def infer(self, payload: Any, worker: int = 0) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.running_peak = max(self.running_peak, self.running)
            delay = self.delay_s * (self.rng.random() * 3 if self.jitter else 1)
        time.sleep(delay)
        with self.lock:
            self.running -= 1
        if self.fail_on is not None and self.fail_on in payload:
            raise RuntimeError("encoder failed")
        out = np.zeros((len(payload), 4), np.float32)
        out[:, 0] = [int(t[1:]) for t in payload]
        return out


class Source:
    """Items ``(n, "t<n>")``, counting how many were read."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.read = 0

    def __iter__(self) -> Iterator[tuple[int, str]]:
        for i in range(self.n):
            self.read += 1
            yield i, f"t{i}"


def test_batches_come_back_in_order_with_their_keys() -> None:
    encoder = SlowStaged(workers=4, delay_s=0.005)
    with EmbeddingPipeline(encoder, Source(203), window=10) as pipeline:
        results = list(pipeline)
    keys = [k for ks, _ in results for k in ks]
    assert sorted(keys) == list(range(203))
    for ks, vectors in results:
        assert vectors[:, 0].tolist() == ks  # each vector is its own key's
    # window by window: every key of window w comes before any key of window w + 1
    windows = [k // 10 for k in keys]
    assert windows == sorted(windows)
    assert encoder.running_peak > 1  # the workers really ran at once
    assert pipeline.stats.batches == len(results) and pipeline.stats.items == 203


def test_backpressure_bounds_what_is_read_ahead_of_a_slow_encoder() -> None:
    encoder = SlowStaged(workers=2, batch_size=2, delay_s=0.02, jitter=False)
    source = Source(120)
    ahead = []
    with EmbeddingPipeline(encoder, source, window=4, max_in_flight=3) as pipeline:
        taken = 0
        for keys, _ in pipeline:
            taken += len(keys)
            ahead.append(source.read - taken)
    assert taken == 120
    # read ahead of the caller: at most the batches in flight plus one window being prepared
    assert max(ahead) <= 3 * 2 + 4
    assert pipeline.in_flight_peak <= 3


def test_a_slow_caller_stops_the_tokeniser() -> None:
    encoder = SlowStaged(workers=2, batch_size=2, delay_s=0.0, jitter=False)
    source = Source(200)
    with EmbeddingPipeline(encoder, source, window=4, max_in_flight=3) as pipeline:
        for _ in pipeline:
            time.sleep(0.02)  # the caller's writes are the bottleneck now
            assert source.read <= pipeline.stats.items + 3 * 2 + 4
    assert pipeline.stats.items == 200


def test_an_encoder_error_reaches_the_caller_and_the_threads_end() -> None:
    encoder = SlowStaged(workers=3, delay_s=0.001, fail_on="t57")
    pipeline = EmbeddingPipeline(encoder, Source(500), window=8)
    with pytest.raises(RuntimeError, match="encoder failed"):
        for _ in pipeline:
            pass
    pipeline.close()
    assert not any(t.is_alive() for t in pipeline._threads)


def test_a_source_error_reaches_the_caller() -> None:
    def broken() -> Iterator[tuple[int, str]]:
        yield 0, "t0"
        raise OSError("store unreadable")

    with pytest.raises(OSError, match="store unreadable"), EmbeddingPipeline(SlowStaged(), broken()) as pipeline:
        list(pipeline)


def test_cancel_stops_soon_and_keeps_what_was_done() -> None:
    cancel = threading.Event()
    encoder = SlowStaged(workers=2, batch_size=2, delay_s=0.01, jitter=False)
    got = []
    with EmbeddingPipeline(encoder, Source(10_000), window=8, cancel=cancel) as pipeline:
        for keys, _ in pipeline:
            got.extend(keys)
            if len(got) >= 20:
                cancel.set()
    assert 20 <= len(got) < 40
    assert not any(t.is_alive() for t in pipeline._threads)


def test_plain_encoders_run_whole_batches() -> None:
    fake = FakeEncoder()
    assert isinstance(staged(fake), WholeBatches)
    texts = [f"def f{i}(): return {i}" for i in range(150)]
    with EmbeddingPipeline(staged(fake, batch_size=64), enumerate(texts)) as pipeline:
        out = list(pipeline)
    assert [len(k) for k, _ in out] == [64, 64, 22]
    got = np.concatenate([v for _, v in out])
    assert np.allclose(got, fake.encode_documents(texts))


# layout ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("cores", "workers", "threads", "sessions"),
                         [(1, 1, 1, 1), (2, 2, 1, 1), (4, 4, 1, 1), (8, 4, 2, 4), (16, 8, 2, 8), (64, 32, 2, 32)])
def test_cpu_layout_uses_every_core(cores: int, workers: int, threads: int, sessions: int) -> None:
    layout = choose_layout(cores, CPU)
    assert (layout.workers, layout.threads, layout.sessions) == (workers, threads, sessions)
    assert layout.workers * layout.threads == cores
    assert layout.batch_size == 32
    assert layout.max_batch_tokens >= 256  # a whole 256-token text always fits
    assert layout.workers * layout.max_batch_tokens <= max(8192, 256 * layout.workers)  # memory in flight


def test_cuda_layout_takes_big_batches_on_one_session() -> None:
    for cores in (1, 2, 16):
        layout = choose_layout(cores, CUDA)
        assert layout.sessions == 1 and layout.workers == 2 and layout.batch_size >= 256
        assert layout.max_batch_tokens >= layout.batch_size * 128


def test_layout_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESEARCH_LAYOUT", "3x2")
    assert layout_override(CPU) == Layout(workers=3, threads=2, sessions=3, batch_size=32, max_batch_tokens=1365)
    monkeypatch.setenv("CODESEARCH_LAYOUT", "1x1")
    assert layout_override(CPU) == Layout(workers=1, threads=1, sessions=1, batch_size=32, max_batch_tokens=2048)
    monkeypatch.setenv("CODESEARCH_LAYOUT", "lots")
    assert layout_override(CPU) is None


# the indexer's use of it --------------------------------------------------------------------------------
class CountingStore:
    """Counts the store's vector writes of an engine."""

    def __init__(self, engine: Engine) -> None:
        self.writes = 0
        original = engine.store.put_vectors

        def put_vectors(*args: Any, **kwargs: Any) -> None:
            self.writes += 1
            original(*args, **kwargs)

        engine.store.put_vectors = put_vectors  # type: ignore[method-assign]


def test_embedding_writes_in_batches_and_reports_stages(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder(delay_s=0.01))
    counter = CountingStore(engine)
    engine.sync()
    pending = engine.status().pending
    report = engine.indexer.embed_pending(engine.encoder, engine._vector_index(), batch_size=4)
    assert report.embedded == pending > 8
    assert counter.writes < report.embedded / 4  # far fewer store writes than batches
    assert engine.status().pending == 0
    assert {"read_s", "tokenise_s", "infer_s", "store_s", "hnsw_s"} <= set(report.stages)
    assert report.stages["infer_s"] > 0
    assert len(engine._vector_index()) == engine.status().chunks
    engine.close()


def test_embedding_cancelled_keeps_what_was_embedded(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    engine = Engine(root, encoder=FakeEncoder(delay_s=0.02))
    engine.sync()
    total = engine.status().pending
    cancel = threading.Event()
    seen = []

    def progress(p: Any) -> None:
        seen.append(p.embedded)
        if p.embedded >= 8:
            cancel.set()

    report = engine.indexer.embed_pending(engine.encoder, engine._vector_index(), cancel=cancel,
                                          progress=progress, batch_size=4)
    assert report.cancelled and 8 <= report.embedded < total
    assert engine.status().pending == total - report.embedded  # every batch handed back was stored
    engine.close()


class TimedFake(FakeEncoder):
    """Records when each document batch was embedded."""

    def __init__(self) -> None:
        super().__init__(delay_s=0.005)
        self.calls: list[float] = []

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(time.monotonic())
        return super().encode_documents(texts)


def many_functions(root: Path, files: int) -> Path:
    for f in range(files):
        path = root / f"pkg{f % 7}" / f"mod_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"def job_{f}_{i}(queue):\n    return queue.pop({i})\n\n\n" for i in range(6)))
    return root


def test_sync_and_embed_overlapped_build_the_same_index(tmp_path: Path) -> None:
    root = many_functions(make_repo(tmp_path / "repo"), files=300)
    timed = TimedFake()
    overlapped = Engine(root, encoder=timed)
    synced_at: list[float] = []
    sync, report = overlapped.update(overlap=True, on_synced=lambda s: synced_at.append(time.monotonic()))
    assert sync.added > 300 and not report.cancelled
    assert timed.calls[0] < synced_at[0]  # embedding started while files were still being read
    plain = Engine(root, encoder=FakeEncoder(), index_dir=tmp_path / "plain")
    plain.update(overlap=False)
    for engine in (overlapped, plain):
        status = engine.status()
        assert status.pending == 0 and status.embedded == status.chunks > 1800
        assert len(engine._vector_index()) == status.chunks  # every chunk text differs here
        assert engine.graph_drift() == (set(), set())
    assert report.embedded == len(set(plain.store.pending_hashes("another-model")))  # every text once
    for query in ("pop the queue for job 17 3", "parse_retry_after"):  # the graphs differ in insertion order only
        assert [h.path for h in overlapped.search(query).hits[:3]] == [h.path for h in plain.search(query).hits[:3]]
    overlapped.close()
    plain.close()


def test_overlapped_sync_keeps_vectors_cached_before(tmp_path: Path) -> None:
    root = many_functions(make_repo(tmp_path / "repo"), files=60)
    engine = Engine(root, encoder=FakeEncoder())
    engine.update(overlap=True)
    (root / "pkg0" / "mod_0.py").write_text("def job_0_0(queue):\n    return queue.pop(0)\n\n\n"
                                            "def fresh():\n    pass\n")
    _, report = engine.update(overlap=True)
    assert report.embedded == 1  # only the new function: the others' vectors were cached
    assert engine.status().pending == 0
    engine.close()


class FailingFake(FakeEncoder):
    """Fails on its ``fail_at``-th document batch."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.batches = 0

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.batches += 1
        if self.batches == self.fail_at:
            raise RuntimeError("the fake encoder failed part-way")
        return super().encode_documents(texts)


@pytest.mark.parametrize("overlap", [True, False])
def test_batched_writes_keep_one_graph_node_per_live_text(tmp_path: Path, overlap: bool) -> None:
    root = many_functions(make_repo(tmp_path / "repo"), files=60)
    for copy in range(3):  # copies of a file: their texts share a vector and a graph node
        shutil.copy(root / "pkg0" / "mod_0.py", root / f"copy_{copy}.py")
    engine = Engine(root, encoder=FakeEncoder())
    engine.update(overlap=overlap)
    key = engine.encoder.model_key
    assert engine.graph_drift() == (set(), set())
    assert len(engine._vector_index()) == len(engine.store.live_vector_ids(key)) < engine.status().chunks

    (root / "pkg0" / "mod_0.py").unlink()  # its texts live on in the copies
    edited = "def job_1_0(queue):\n    return queue.pop(0)\n\n\ndef fresh():\n    pass\n"
    (root / "pkg1" / "mod_1.py").write_text(edited)
    (root / "pkg2" / "mod_2.py").unlink()  # its texts are gone
    _, report = engine.update(overlap=overlap)
    assert report.embedded == 1 and engine.status().pending == 0
    assert engine.graph_drift() == (set(), set())
    engine.close()


@pytest.mark.parametrize("overlap", [True, False])
def test_an_embedding_error_part_way_leaves_the_graph_on_the_store(tmp_path: Path, overlap: bool) -> None:
    root = many_functions(make_repo(tmp_path / "repo"), files=200)
    failing = FailingFake(fail_at=4)
    engine = Engine(root, encoder=failing)
    with pytest.raises(RuntimeError, match="failed part-way"):
        engine.update(overlap=overlap)
    assert failing.batches >= 4
    assert engine.graph_drift() == (set(), set())
    failing.fail_at = 0
    engine.update(overlap=overlap)  # goes on from there
    assert engine.status().pending == 0 and engine.graph_drift() == (set(), set())
    engine.close()
