"""Answer a query: dense + lexical candidates, one fused score, developer-minded ranking.

The fused score of a candidate is its exact cosine to the query (from the stored vector, so
candidates found only lexically are scored densely too) plus weighted lexical evidence, plus
boosts for an exact symbol match and for query words in the symbol or path, minus small
penalties for tests, examples, generated code and non-definition chunks. Weights are set from
``bench/quality.py`` runs on the dev sets (see docs/ranking.md); they live in ``RankingWeights``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..index.identifiers import looks_like_identifier, query_terms, split_identifier
from ..index.store import ChunkRow, Store
from ..index.vector_index import VectorIndex
from ..types import Encoder, SearchHit

TEST_PATH = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testing)(/|$)|(^|/)test_[^/]*$|_test\.\w+$|"
                       r"\.(test|spec)\.\w+$|Tests?\.\w+$")
EXAMPLE_PATH = re.compile(r"(^|/)(examples?|samples?|demos?|docs?|benchmarks?|bench)(/|$)")
GENERATED_PATH = re.compile(r"(^|/)(generated|gen|third_party|vendor)(/|$)|_pb2\.py$|\.pb\.go$|\.generated\.")
DEFINITION_KINDS = frozenset({"function", "method", "class"})


@dataclass(frozen=True)
class RankingWeights:
    lexical: float = 0.15  # times bm25 / best bm25 among candidates
    lexical_only_dense_substitute: float = 0.3  # dense score assumed for chunks not yet embedded
    exact_symbol: float = 1.0
    name_terms: float = 0.08  # times the share of query terms found in symbol/container
    path_terms: float = 0.04  # times the share of query terms found in the path
    test_penalty: float = 0.06
    example_penalty: float = 0.04
    generated_penalty: float = 0.08
    non_definition_penalty: float = 0.03
    same_file_penalty: float = 0.03  # per earlier hit from the same file
    dense_candidates: int = 100
    lexical_candidates: int = 100


@dataclass(frozen=True)
class SearchFilters:
    languages: tuple[str, ...] = ()
    path_glob: str | None = None

    def accepts(self, path: str, language: str) -> bool:
        if self.languages and language not in self.languages:
            return False
        if self.path_glob:
            return glob_match(path, self.path_glob)
        return True


def glob_match(path: str, pattern: str) -> bool:
    """``src/**/*.py``, ``*.ts`` (any depth), ``lib/`` (a folder prefix)."""
    pattern = pattern.strip()
    if pattern.endswith("/"):
        return path.startswith(pattern) or f"/{pattern}" in f"/{path}"
    if "/" not in pattern:
        return fnmatch.fnmatch(path.rsplit("/", 1)[-1], pattern) or fnmatch.fnmatch(path, pattern)
    regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    regex = regex.replace(r"\?", "[^/]")
    return re.fullmatch(regex, path) is not None or path.startswith(pattern.rstrip("/") + "/")


@dataclass
class Candidate:
    row: ChunkRow
    dense: float | None = None
    lexical: float = 0.0
    exact: bool = False
    sources: set[str] = field(default_factory=set)
    score: float = 0.0


@dataclass(frozen=True)
class SearchOutcome:
    hits: list[SearchHit]
    dense_used: bool
    lexical_used: bool
    texts: list[str] = field(default_factory=list)  # each hit's chunk text, for a re-ranker


def _wants(query_lower: str, words: Sequence[str]) -> bool:
    return any(re.search(rf"\b{w}", query_lower) for w in words)


def run_search(store: Store, index: VectorIndex | None, encoder: Encoder | None, query: str, *,
               limit: int = 10, filters: SearchFilters = SearchFilters(),
               weights: RankingWeights = RankingWeights(), mode: str = "fused") -> SearchOutcome:
    """``mode`` is ``fused`` (the product), or ``dense``/``lexical`` alone for benchmarks."""
    query = query.strip()
    terms = query_terms(query)
    candidates: dict[int, Candidate] = {}

    def candidate(chunk_id: int) -> Candidate:
        """Found by id first; its row is filled in once, for all candidates, below."""
        return candidates.setdefault(chunk_id, Candidate(row=None))  # type: ignore[arg-type]

    widen = 4 if (filters.languages or filters.path_glob) else 1

    query_vec = None
    if mode in ("fused", "dense") and encoder is not None and index is not None and len(index):
        query_vec = encoder.encode_queries([query])[0]
        for chunk_id, score in index.search(query_vec, weights.dense_candidates * widen):
            cand = candidate(chunk_id)
            cand.dense = score
            cand.sources.add("dense")
    lexical_used = False
    if mode in ("fused", "lexical"):
        lexical = store.lexical_search(terms, weights.lexical_candidates * widen)
        lexical_used = bool(terms)
        best = max((s for _, s in lexical), default=0.0)
        for chunk_id, score in lexical:
            cand = candidate(chunk_id)
            cand.lexical = score / best if best > 0 else 0.0
            cand.sources.add("lexical")
        if looks_like_identifier(query):
            for chunk_id in store.symbol_matches(query.rstrip("()")):
                cand = candidate(chunk_id)
                cand.exact = True
                cand.sources.add("symbol")

    rows = store.chunk_rows(candidates)
    candidates = {cid: c for cid, c in candidates.items() if cid in rows}
    for cid, cand in candidates.items():
        cand.row = rows[cid]
    candidates = {cid: c for cid, c in candidates.items()
                  if filters.accepts(c.row.chunk.path, c.row.chunk.language)}

    if query_vec is not None:
        missing = [c.row.embed_hash for c in candidates.values() if c.dense is None]
        if missing:
            model_key = encoder.model_key if encoder else ""
            for ids, vecs in store.embedded_chunks(model_key, hashes=missing):
                sims = vecs @ query_vec
                for cid, sim in zip(ids.tolist(), sims.tolist(), strict=True):
                    if cid in candidates:
                        candidates[cid].dense = float(sim)

    query_lower = query.lower()
    wants_tests = _wants(query_lower, ("test", "spec", "fixture", "mock"))
    wants_examples = _wants(query_lower, ("example", "sample", "demo", "doc", "bench"))
    wants_generated = _wants(query_lower, ("generated", "vendor", "protobuf", "pb"))
    term_set = set(terms)
    for cand in candidates.values():
        chunk = cand.row.chunk
        if mode == "lexical":
            cand.score = cand.lexical + (weights.exact_symbol if cand.exact else 0.0)
            continue
        if mode == "dense":
            cand.score = cand.dense if cand.dense is not None else -1.0
            continue
        # Not embedded yet (or no encoder): stand in for the dense score with lexical evidence.
        dense = cand.dense if cand.dense is not None else weights.lexical_only_dense_substitute * cand.lexical
        score = dense + weights.lexical * cand.lexical
        if cand.exact:
            score += weights.exact_symbol
        if term_set:
            name_parts = set(split_identifier(chunk.symbol)) | set(split_identifier(chunk.container))
            path_parts = set(split_identifier(chunk.path.replace("/", " ").replace(" ", "_")))
            score += weights.name_terms * len(term_set & name_parts) / len(term_set)
            score += weights.path_terms * len(term_set & path_parts) / len(term_set)
        if not wants_tests and TEST_PATH.search(chunk.path):
            score -= weights.test_penalty
        if not wants_examples and EXAMPLE_PATH.search(chunk.path):
            score -= weights.example_penalty
        if not wants_generated and GENERATED_PATH.search(chunk.path):
            score -= weights.generated_penalty
        if chunk.kind not in DEFINITION_KINDS:
            score -= weights.non_definition_penalty
        cand.score = score

    ranked = sorted(candidates.values(), key=lambda c: (-c.score, c.row.chunk.path, c.row.chunk.start_line))
    ranked = _diversify(ranked, weights.same_file_penalty) if mode == "fused" else ranked
    top = ranked[:limit]
    return SearchOutcome(hits=[_to_hit(c, terms) for c in top], dense_used=query_vec is not None,
                         lexical_used=lexical_used, texts=[c.row.chunk.text for c in top])


def _diversify(ranked: list[Candidate], penalty: float) -> list[Candidate]:
    """No single file floods the top: each further hit from a file loses ``penalty``; windows of
    the same definition collapse into their best one."""
    seen_files: dict[str, int] = {}
    seen_defs: set[tuple[str, str, str]] = set()
    out: list[Candidate] = []
    for cand in ranked:
        chunk = cand.row.chunk
        if chunk.part:
            key = (chunk.path, chunk.container, chunk.symbol)
            if key in seen_defs:
                continue
            seen_defs.add(key)
        earlier = seen_files.get(chunk.path, 0)
        seen_files[chunk.path] = earlier + 1
        cand.score -= penalty * earlier
        out.append(cand)
    return sorted(out, key=lambda c: -c.score)


def _to_hit(cand: Candidate, terms: list[str]) -> SearchHit:
    chunk = cand.row.chunk
    return SearchHit(
        path=chunk.path, start_line=chunk.start_line, end_line=chunk.end_line, symbol=chunk.symbol,
        container=chunk.container, kind=chunk.kind, language=chunk.language, score=round(cand.score, 4),
        snippet=make_snippet(chunk.text, terms), sources=tuple(sorted(cand.sources)),
    )


def make_snippet(text: str, terms: list[str], width: int = 160) -> str:
    """One line: the first line mentioning a query term, else the first non-blank line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        return ""
    best = lines[0]
    if terms:
        lowered = [ln.lower() for ln in lines]
        for i, ln in enumerate(lowered[:40]):
            if any(t in ln for t in terms):
                best = lines[i]
                break
    return best if len(best) <= width else best[: width - 1] + "…"

