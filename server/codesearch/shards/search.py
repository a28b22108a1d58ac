"""Search a shards folder: every shard opened read-only, searched in parallel, merged on score.

A shard is a workspace index, so each is searched by the engine's own query path. The fused score is
comparable across shards: its main term is the cosine of the query to the chunk (one model, one
scale), and the evidence terms are bounded (lexical BM25 is normalised within each shard, and
weighs 0.15); :func:`~codesearch.query.merge.merge_hits` orders the union by it.

The query is embedded once per search, not once per shard (:class:`QueryCache`), and each shard's
HNSW graph is loaded once, on first use. This is the entry point for every protocol::

    shards = ShardSet.open("/srv/shards", EngineConfig(model=None, device="auto"))
    result = shards.search("retry with exponential backoff", limit=10)
    [hit.to_json() for hit in result.hits]  # SearchHit.to_json() plus "repo"
    shards.close()
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..embed.loading import EncoderLoadError, load_encoder
from ..engine import Engine, EngineConfig, EngineError
from ..query.merge import merge_hits
from ..types import Encoder, SearchHit, SearchMode, Vectors
from .manifest import ManifestError, ShardRecord, ShardsManifest

log = logging.getLogger(__name__)

MAX_THREADS = 8
DEFAULT_CONFIG = EngineConfig()


@dataclass(frozen=True)
class ShardHit:
    repo: str
    root: Path  # the repository's folder when the shard was built
    hit: SearchHit

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, **self.hit.to_json()}


@dataclass
class ShardSearchResult:
    hits: list[ShardHit]
    searched: int  # shards searched
    dense_used: bool
    dense_skipped: str | None = None  # why the search ran on keywords only
    errors: list[str] = field(default_factory=list)  # shards that failed this query, and why


@dataclass
class MountedShard:
    record: ShardRecord
    engine: Engine


class QueryCache:
    """An encoder that embeds each recent query once, however many shards ask for it."""

    def __init__(self, encoder: Encoder, size: int = 64) -> None:
        self.inner = encoder
        self.dimension = encoder.dimension
        self.model_key = encoder.model_key
        self.model_id = encoder.model_id
        self.provider = encoder.provider
        self.provider_reason = encoder.provider_reason
        self._size = size
        self._cache: OrderedDict[tuple[str, ...], Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> Vectors:
        key = tuple(texts)
        with self._lock:  # held while encoding: the other shards' threads wait for this one answer
            found = self._cache.get(key)
            if found is None:
                found = self.inner.encode_queries(texts)
                self._cache[key] = found
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            return found

    def encode_documents(self, texts: Sequence[str]) -> Vectors:
        return self.inner.encode_documents(texts)


class ShardSet:
    """The shards of one shards folder, mounted read-only, and the one query encoder they share."""

    def __init__(self, folder: Path, shards: list[MountedShard], problems: list[str],
                 encoder: QueryCache | None, model_problem: str = "") -> None:
        self.folder = folder
        self.shards = shards
        self.problems = problems  # shards left out, and why
        self.encoder = encoder
        self.model_problem = model_problem  # why searches run on keywords only
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, len(shards))),
                                        thread_name_prefix="codesearch-shard")

    @classmethod
    def open(cls, folder: Path | str, config: EngineConfig = DEFAULT_CONFIG, *, encoder: Encoder | None = None,
             candidates: int | None = None, on_message: Callable[[str], None] | None = None) -> ShardSet:
        """Mount every shard the manifest lists as built; ``EngineError`` if ``folder`` holds no manifest.

        ``encoder`` defaults to ``config``'s model, loaded now (once per process, see
        :func:`~codesearch.embed.loading.load_encoder`); if it cannot load, searches use keywords only
        and ``model_problem`` says why. ``candidates`` caps how many dense and lexical candidates each
        shard scores (the engine's default is 100): fewer is faster over many shards, at some cost in
        agreement with a full-depth search (bench/shards.py measures both). A configured ranker is not
        applied to shards."""
        folder = Path(folder).expanduser().resolve()
        try:
            manifest = ShardsManifest.read(folder)
        except ManifestError as exc:
            raise EngineError(str(exc)) from exc
        model_problem = ""
        if encoder is None:
            try:
                encoder = load_encoder(config.model, config.device, on_message)
            except EncoderLoadError as exc:
                model_problem = str(exc)
        shared = QueryCache(encoder) if encoder is not None else None
        config = replace(config, ranker=None)
        shards: list[MountedShard] = []
        problems: list[str] = []
        for record in manifest.records:
            if not record.ok:
                problems.append(f"{record.repo}: not mounted, its last build failed: {record.error}")
                continue
            try:
                engine = Engine.open_read_only(folder / record.shard, config, encoder=shared, on_message=on_message)
            except EngineError as exc:
                problems.append(f"{record.repo}: not mounted: {exc}")
                continue
            if candidates is not None:
                engine.weights = replace(engine.weights, dense_candidates=candidates, lexical_candidates=candidates)
            shards.append(MountedShard(record, engine))
        if shared is not None:
            other = sorted({s.record.repo for s in shards if s.record.model_key != shared.model_key})
            if other:
                problems.append(f"built with another model than {shared.model_id} ({shared.model_key}), so found by "
                                f"keywords only: {', '.join(other)}")
        return cls(folder, shards, problems, shared, model_problem)

    @property
    def repos(self) -> list[str]:
        return [s.record.repo for s in self.shards]

    def search(self, query: str, *, limit: int = 10, languages: Iterable[str] = (), path_glob: str | None = None,
               mode: SearchMode | str = SearchMode.FUSED, repos: Iterable[str] | None = None) -> ShardSearchResult:
        """The best ``limit`` hits of all shards (or of the ``repos`` named), each naming its repo."""
        if not query or not query.strip():
            raise EngineError("the query is empty")
        if limit < 1:
            raise EngineError("limit must be at least 1")
        mode = SearchMode(mode)
        dense_skipped = None
        if self.encoder is None and mode != SearchMode.LEXICAL:
            dense_skipped = self.model_problem or "no model"
            mode = SearchMode.LEXICAL
        wanted = set(repos) if repos is not None else None
        targets = [s for s in self.shards if wanted is None or s.record.repo in wanted]
        languages = tuple(languages)

        def one(shard: MountedShard) -> list[SearchHit]:
            return shard.engine.search(query, limit=limit, languages=languages, path_glob=path_glob, mode=mode,
                                       load_model=False).hits

        errors: list[str] = []
        results: list[tuple[MountedShard, list[SearchHit]]] = []
        for shard, future in [(s, self._pool.submit(one, s)) for s in targets]:
            try:
                results.append((shard, future.result()))
            except EngineError as exc:
                errors.append(f"{shard.record.repo}: {exc}")
        merged = merge_hits(((s, hits) for s, hits in results), limit)
        hits = [ShardHit(s.record.repo, s.engine.root, hit) for s, hit in merged]
        return ShardSearchResult(hits, len(targets), dense_used=mode != SearchMode.LEXICAL,
                                 dense_skipped=dense_skipped, errors=errors)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for shard in self.shards:
            shard.engine.close()
