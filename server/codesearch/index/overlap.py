"""Sync and embed at once: each file's new chunk texts go to the embedding pipeline as soon as the file
is stored, so a GPU embeds while the CPU still reads and chunks (a full index is then about as long as
the slower of the two, not their sum).

Vectors that come back during the sync are kept in memory, at most :data:`BUFFER_MAX` (beyond that the
pipeline waits), and written when the lexical index is complete: the sync holds the store's write
transaction, and the graph may only point at committed chunks. The rest is then embedded and written
as usual, and what was already pending before (chunks of unchanged files) after that.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping

from ..embed.encoder import CUDA, ProviderError, choose_provider
from ..embed.pipeline import EmbeddingPipeline, Feed, staged
from ..types import Encoder, Vectors
from .indexer import EmbedReport, Indexer, ProgressCallback, SyncReport
from .prepare import PreparedFile
from .store import embed_text
from .vector_index import VectorIndex

BUFFER_MAX = 32768  # vectors held while the sync runs (48 MB at 384 dimensions)


def overlap_pays(encoder: Encoder | None, device: str) -> bool:
    """Embedding while syncing pays on a GPU; on a CPU both would compete for the same cores.
    ``CODESEARCH_OVERLAP=on|off`` decides instead (benchmarks, tests)."""
    mode = os.environ.get("CODESEARCH_OVERLAP", "auto").lower()
    if mode in ("on", "1", "off", "0"):
        return mode in ("on", "1")
    if encoder is not None:
        return encoder.provider == CUDA
    try:
        return device != "cpu" and choose_provider(device).provider == CUDA
    except ProviderError:
        return False  # loading the model says why


def sync_and_embed(indexer: Indexer, encoder: Encoder, index: VectorIndex, overlays: Mapping[str, str],
                   cancel: threading.Event | None = None, progress: ProgressCallback | None = None,
                   on_synced: Callable[[SyncReport], None] | None = None,
                   on_batch: Callable[[], None] | None = None) -> tuple[SyncReport, EmbedReport]:
    model_key = encoder.model_key
    feed: Feed[str] = Feed()
    fed: set[str] = set()
    ready: list[tuple[list[str], Vectors]] = []
    stages = staged(encoder)
    # files arrive a few chunks at a time: smaller windows than a full pass, so embedding starts early
    pipeline = EmbeddingPipeline(stages, feed, window=max(256, 4 * stages.batch_size), cancel=cancel)
    pipeline.start()

    any_cached = indexer.store.has_vectors(model_key)  # a first index has none: no lookup per file

    def on_stored(item: PreparedFile) -> None:
        fresh = {terms[0]: chunk for chunk, terms in zip(item.chunks, item.terms, strict=True)
                 if terms[0] not in fed}
        fed.update(fresh)
        cached = indexer.store.with_vectors(model_key, list(fresh)) if any_cached else set()
        feed.put([(h, embed_text(chunk)) for h, chunk in fresh.items() if h not in cached])
        if sum(len(keys) for keys, _ in ready) < BUFFER_MAX:
            ready.extend(pipeline.take_ready())

    try:
        sync = indexer.sync(overlays, cancel, progress, on_stored=on_stored)
        feed.close()
        if on_synced is not None:
            on_synced(sync)
    except BaseException:
        feed.close()
        pipeline.close()
        raise
    report = indexer.write_embedded(pipeline, model_key, index, feed.count, cancel, progress, on_batch, ready)
    if not report.cancelled:
        rest = indexer.embed_pending(encoder, index, cancel, progress, on_batch=on_batch)
        report = merge(report, rest)
    return sync, report


def merge(first: EmbedReport, then: EmbedReport) -> EmbedReport:
    stages = {k: first.stages.get(k, 0.0) + then.stages.get(k, 0.0) for k in first.stages.keys() | then.stages.keys()}
    stages["workers"] = max(first.stages.get("workers", 1), then.stages.get("workers", 1))
    return EmbedReport(embedded=first.embedded + then.embedded, reused=first.reused + then.reused,
                       elapsed_s=first.elapsed_s + then.elapsed_s, cancelled=then.cancelled, stages=stages)
