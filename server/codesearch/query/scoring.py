"""The fused score of one chunk for one query: a pure function of the evidence, rule by rule.

Every rule here is a small step with its own weight in :class:`RankingWeights`; the weights and
the figure that justifies each rule are in docs/ranking.md (the repository benchmark and the dev
sets). Nothing here reads the index: :mod:`.candidates` gathers the evidence, :mod:`.search`
orders and cuts the list.

Every part of the score is absolute, so scores of different indexes can be compared
(:mod:`.merge`): the cosine, the lexical evidence as the share of the query's BM25 weight a chunk
reaches (0..1, see :func:`lexical_share`), boosts for names, penalties for where a chunk lives. A
chunk not embedded yet stands in with a cosine calibrated on the embedded candidates of the same
query (:func:`stand_in_cosines`), so partial embedding ranks like keywords, not below them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from ..index.identifiers import query_terms, split_identifier
from ..types import Chunk, SearchMode
from .intent import QualifiedName, QueryKind, as_identifier, asks_location, classify, mentioned_names, mentions

TEST_PATH = re.compile(r"(^|/)(tests?|__tests__|spec|specs|testing|testdata)(/|$)|(^|/)test_[^/]*$|_test\.\w+$|"
                       r"\.(test|spec)\.\w+$|Tests?\.\w+$|_spec\.rb$|(^|/)conftest\.py$")
EXAMPLE_PATH = re.compile(r"(^|/)(examples?|samples?|demos?|docs?|benchmarks?|benches|bench)(/|$)")
VENDORED_PATH = re.compile(r"(^|/)(third_party|third-party|vendor|vendored|node_modules|external|extern|deps)(/|$)")
GENERATED_PATH = re.compile(r"(^|/)(generated|gen|dist|build)(/|$)|_pb2(_grpc)?\.pyi?$|\.pb\.(go|cc|h)$|"
                            r"\.generated\.|\.min\.[cm]?js$|\.bundle\.js$")
STUB_PATH = re.compile(r"\.pyi$|\.d\.[cm]?ts$")
DEFINITION_KINDS = frozenset({"function", "method", "class"})
PROSE_LANGUAGES = frozenset({"markdown", "rst", "text", "latex"})
BM25_K1 = 1.2  # SQLite FTS5's bm25(): a term's share saturates at idf × (k1 + 1)


@dataclass(frozen=True)
class RankingWeights:
    lexical_language: float = 0.15  # times the lexical share, for plain-language queries
    lexical_mixed: float = 0.15  # ... for queries mixing words and names
    lexical_identifier: float = 0.15  # ... for one-name queries
    lexical_power: float = 1.0  # the share is raised to this power: > 1 counts partial keyword matches less
    exact_name: float = 1.0  # the query is this chunk's name, as typed (qualifier found in path/container)
    caseless_name: float = 0.5  # ... ignoring case
    unqualified_name: float = 0.4  # the name matches but the qualifier typed is not found
    extension_cut: float = 0.3  # a name's extension block (Rust impl, Swift extension) gets this much less
    mentioned_name: float = 0.3  # a name inside a several-word query is this chunk's name (times its level)
    mentioned_capitalised: float = 0.3  # ... a capitalised word (``the Console class``) is
    name_terms: float = 0.08  # times the share of query terms found in symbol/container
    path_terms: float = 0.04  # times the share of query terms found in the path
    file_evidence: float = 0.0  # location questions: times the file's other strong chunks (see file_boosts)
    test_penalty: float = 0.15
    example_penalty: float = 0.04
    vendored_penalty: float = 0.08
    generated_penalty: float = 0.08
    stub_penalty: float = 0.1
    prose_penalty: float = 0.0  # documentation files (Markdown, reStructuredText, plain text)
    non_definition_penalty: float = 0.03
    same_file_penalty: float = 0.03  # per earlier hit from the same file
    stand_in: str = "rank"  # how chunks without a vector get a cosine: see stand_in_cosines
    stand_in_scale: float = 0.3  # "scaled": this times the lexical share
    dense_candidates: int = 100
    lexical_candidates: int = 100

    def lexical_for(self, kind: QueryKind) -> float:
        return {QueryKind.LANGUAGE: self.lexical_language, QueryKind.MIXED: self.lexical_mixed,
                QueryKind.IDENTIFIER: self.lexical_identifier}[kind]


@dataclass(frozen=True)
class QueryContext:
    """What the scoring rules need to know about the query itself."""

    terms: frozenset[str]
    kind: QueryKind = QueryKind.LANGUAGE
    identifier: QualifiedName | None = None  # the name a one-name query stands for
    mentioned: tuple[QualifiedName, ...] = ()  # names inside a several-word query
    capitalised: tuple[QualifiedName, ...] = ()  # capitalised words inside it, past the first
    location: bool = False  # "where is ... implemented": a file answers it
    wants_tests: bool = False
    wants_examples: bool = False
    wants_generated: bool = False
    wants_stubs: bool = False
    wants_prose: bool = False

    @classmethod
    def of(cls, query: str) -> QueryContext:
        return cls(
            terms=frozenset(query_terms(query)),
            kind=classify(query),
            identifier=as_identifier(query),
            mentioned=mentioned_names(query),
            capitalised=mentioned_names(query, capitalised=True),
            location=asks_location(query),
            wants_tests=mentions(query, ("test", "spec", "fixture", "mock")),
            wants_examples=mentions(query, ("example", "sample", "demo", "doc", "bench")),
            wants_generated=mentions(query, ("generated", "vendor", "protobuf", "pb", "third.party")),
            wants_stubs=mentions(query, ("stub", "overload", "typing", "type hint", "declaration", "d.ts", "pyi")),
            wants_prose=mentions(query, ("doc", "readme", "guide", "tutorial", "manual", "changelog", "usage")),
        )


@dataclass(frozen=True)
class Evidence:
    """What the retrievers found for one chunk."""

    dense: float | None = None  # cosine to the query; None when the chunk has no vector yet
    lexical: float = 0.0  # share of the query's BM25 weight this chunk reaches, 0..1 (lexical_share)
    stand_in: float = 0.0  # the cosine assumed while ``dense`` is None (stand_in_cosines)
    extends: bool = False  # the chunk adds to a type defined elsewhere (extends_elsewhere)


def score_chunk(chunk: Chunk, evidence: Evidence, query: QueryContext, weights: RankingWeights,
                mode: SearchMode = SearchMode.FUSED) -> float:
    """Higher is better. ``dense`` and ``lexical`` modes are the retrievers alone (benchmarks)."""
    if mode == SearchMode.LEXICAL:
        return evidence.lexical + _names(chunk, evidence, query, weights)
    if mode == SearchMode.DENSE:
        return evidence.dense if evidence.dense is not None else -1.0
    return (_retrieval(evidence, query, weights) + _names(chunk, evidence, query, weights)
            + _name_and_path_terms(chunk, query, weights)
            - _location_penalty(chunk, query, weights) - _kind_penalty(chunk, weights))


def _retrieval(evidence: Evidence, query: QueryContext, weights: RankingWeights) -> float:
    dense = evidence.dense if evidence.dense is not None else evidence.stand_in
    return dense + weights.lexical_for(query.kind) * evidence.lexical ** weights.lexical_power


# -- names --------------------------------------------------------------------------------------

def _names(chunk: Chunk, evidence: Evidence, query: QueryContext, weights: RankingWeights) -> float:
    cut = weights.extension_cut if evidence.extends else 0.0
    if query.identifier is not None:
        boost = _name_boost(chunk, query.identifier, weights)
        return boost - cut if boost else 0.0
    if not chunk.symbol or not weights.exact_name:
        return 0.0
    return max((weight * max(0.0, _name_boost(chunk, name, weights) - cut) / weights.exact_name
                for weight, names in ((weights.mentioned_name, query.mentioned),
                                      (weights.mentioned_capitalised, query.capitalised)) for name in names),
               default=0.0)


def _name_boost(chunk: Chunk, name: QualifiedName, weights: RankingWeights) -> float:
    symbol = chunk.symbol
    if not symbol or symbol.lower() != name.name.lower():
        return 0.0
    if name.qualifier and not qualifier_found(chunk, name.qualifier):
        return weights.unqualified_name
    # A name typed all in lower case says nothing about case (``console`` may mean ``Console``).
    return weights.exact_name if symbol == name.name or name.name.islower() else weights.caseless_name


_EXTENSION_HEADS = {
    "rust": re.compile(r"^(?:\s*(?://[^\n]*|#!?\[[^\n]*)\n)*\s*(?:unsafe\s+)?impl\b"),
    "swift": re.compile(r"^(?:\s*(?://[^\n]*|@\w+[^\n]*)\n)*\s*(?:(?:public|private|fileprivate|internal)\s+)?"
                        r"extension\b"),
}


def extends_elsewhere(language: str, head: str) -> bool:
    """Whether a chunk, by its first lines, adds to a type defined elsewhere: a Rust ``impl`` block,
    a Swift ``extension``. The chunker names them after the type, like the type's own definition."""
    pattern = _EXTENSION_HEADS.get(language)
    return bool(head and pattern is not None and pattern.match(head))


_GENERIC_STEMS = frozenset({"mod", "index", "__init__", "init", "main", "lib"})


def scope_of(chunk: Chunk) -> list[str]:
    """Where a chunk's name lives, outermost first: the path's folders, the file's stem (unless it
    is ``mod``, ``index``, ``__init__``...) and the enclosing containers, lower case."""
    *folders, file_name = chunk.path.lower().split("/")
    stem = file_name.split(".", 1)[0]
    parts = folders + ([stem] if stem and stem not in _GENERIC_STEMS else [])
    if chunk.container:
        parts += [p.lower() for p in re.split(r"\.|::", chunk.container) if p]
    return parts


def qualifier_found(chunk: Chunk, qualifier: Sequence[str]) -> bool:
    """``Table._render``, ``rich.table.Table``: the qualifier's last part is the chunk's immediate
    scope (its container, else its module) and the other parts appear above it, in order."""
    scope = scope_of(chunk)
    wanted = [q.lower() for q in qualifier]
    if not scope or scope[-1] != wanted[-1]:
        return False
    rest = iter(scope[:-1])
    return all(any(part == s for s in rest) for part in wanted[:-1])


def _name_and_path_terms(chunk: Chunk, query: QueryContext, weights: RankingWeights) -> float:
    if not query.terms:
        return 0.0
    name_parts = _parts(chunk.symbol) | _parts(chunk.container)
    path_parts = _parts(chunk.path.replace("/", "_"))
    share = len(query.terms)
    return (weights.name_terms * len(query.terms & name_parts) / share
            + weights.path_terms * len(query.terms & path_parts) / share)


@lru_cache(maxsize=1 << 16)
def _parts(identifier: str) -> frozenset[str]:
    return frozenset(split_identifier(identifier))


# -- where a chunk lives ------------------------------------------------------------------------

def _location_penalty(chunk: Chunk, query: QueryContext, weights: RankingWeights) -> float:
    test, example, vendored, generated, stub = path_kinds(chunk.path)
    rules = ((weights.test_penalty, query.wants_tests, test),
             (weights.example_penalty, query.wants_examples, example),
             (weights.vendored_penalty, query.wants_generated, vendored),
             (weights.generated_penalty, query.wants_generated, generated),
             (weights.stub_penalty, query.wants_stubs, stub))
    prose = weights.prose_penalty if chunk.language in PROSE_LANGUAGES and not query.wants_prose else 0.0
    return prose + sum(penalty for penalty, wanted, found in rules if found and not wanted)


@lru_cache(maxsize=1 << 16)
def path_kinds(path: str) -> tuple[bool, bool, bool, bool, bool]:
    """Whether a path is a test, an example, vendored, generated, a stub."""
    return (bool(TEST_PATH.search(path)), bool(EXAMPLE_PATH.search(path)), bool(VENDORED_PATH.search(path)),
            bool(GENERATED_PATH.search(path)), bool(STUB_PATH.search(path)))


def _kind_penalty(chunk: Chunk, weights: RankingWeights) -> float:
    return weights.non_definition_penalty if chunk.kind not in DEFINITION_KINDS else 0.0


# -- evidence the retrievers' raw numbers become -------------------------------------------------

def lexical_share(bm25: float, idfs: Sequence[float]) -> float:
    """BM25 as the share of the most the query's terms can score (each term saturates at
    ``idf × (k1 + 1)``): 1 when every term matches strongly, small for one common word of many.
    Unlike BM25 over the best candidate's BM25 it means the same in every index."""
    ceiling = (BM25_K1 + 1) * sum(idfs)
    return min(1.0, max(0.0, bm25 / ceiling)) if ceiling > 0 else 0.0


def fts5_idf(rows: int, hits: int) -> float:
    """The idf FTS5's bm25() uses for a term found in ``hits`` of ``rows`` rows."""
    idf = math.log((rows - hits + 0.5) / (hits + 0.5)) if rows > 0 else 0.0
    return idf if idf > 0 else 1e-6


def stand_in_cosines(dense: Sequence[float | None], lexical: Sequence[float], weights: RankingWeights
                     ) -> list[float]:
    """A cosine for every candidate without a vector (the others get 0.0, unused).

    - ``rank``: the candidate's rank among the keyword matches without a vector picks the cosine at
      the same rank among the embedded candidates: the best keyword match counts as much as the best
      vector, the second as the second, and so on (a candidate without keywords gets the lowest);
    - ``floor``: the lowest cosine among the embedded candidates;
    - ``scaled``: ``stand_in_scale`` × the lexical share; also what every rule falls back to when no
      candidate has a vector (nothing embedded yet: the order is the keywords').
    """
    known = sorted((d for d in dense if d is not None), reverse=True)
    if weights.stand_in == "scaled" or not known:
        return [weights.stand_in_scale * lex if d is None else 0.0 for d, lex in zip(dense, lexical, strict=True)]
    out = [0.0] * len(dense)
    missing = sorted((i for i, d in enumerate(dense) if d is None), key=lambda i: -lexical[i])
    for rank, i in enumerate(missing):
        use_rank = weights.stand_in == "rank" and lexical[i] > 0
        out[i] = known[min(rank, len(known) - 1)] if use_rank else known[-1]
    return out


# -- ordering -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Scored:
    chunk: Chunk
    score: float
    key: int = 0  # the caller's id for the chunk


def stubs_below_implementations(ranked: Sequence[Scored], query: QueryContext) -> list[Scored]:
    """A stub (``.pyi``, ``.d.ts``) of a name whose implementation is also a candidate ranks right
    below that implementation, however close its few lines are to the query (a stub's text is
    little more than the name); unless the query asks for stubs."""
    if query.wants_stubs:
        return list(ranked)
    best: dict[tuple[str, str], float] = {}
    for item in ranked:
        key = (item.chunk.container, item.chunk.symbol)
        if item.chunk.symbol and not STUB_PATH.search(item.chunk.path):
            best[key] = max(best.get(key, -math.inf), item.score)
    out = [Scored(s.chunk, min(s.score, best[key] - STUB_GAP), s.key)
           if STUB_PATH.search(s.chunk.path) and (key := (s.chunk.container, s.chunk.symbol)) in best else s
           for s in ranked]
    return sorted(out, key=lambda s: -s.score)


STUB_GAP = 1e-3


def file_boosts(ranked: Sequence[Scored], query: QueryContext, weights: RankingWeights) -> list[Scored]:
    """For location questions: every chunk of a file gains ``file_evidence`` times the score its
    file's second and third best chunks have above the median candidate (several strong chunks in
    one file are evidence for the file). Other queries are returned as they are."""
    if not query.location or not weights.file_evidence or len(ranked) < 3:
        return list(ranked)
    scores = sorted(s.score for s in ranked)
    median = scores[len(scores) // 2]
    per_file: dict[str, list[float]] = {}
    for item in ranked:
        per_file.setdefault(item.chunk.path, []).append(item.score)
    support = {path: sum(max(0.0, s - median) for s in sorted(values, reverse=True)[1:3])
               for path, values in per_file.items()}
    boosted = [Scored(s.chunk, s.score + weights.file_evidence * support[s.chunk.path], s.key) for s in ranked]
    return sorted(boosted, key=lambda s: -s.score)


def diversify(ranked: Sequence[Scored], penalty: float) -> list[Scored]:
    """``ranked`` (best first) re-ordered so that no single file floods the top: each further hit from
    a file loses ``penalty``; windows of one definition collapse into the best of them."""
    seen_files: dict[str, int] = {}
    seen_defs: set[tuple[str, str, str]] = set()
    kept: list[Scored] = []
    for item in ranked:
        chunk = item.chunk
        if chunk.part:
            key = (chunk.path, chunk.container, chunk.symbol)
            if key in seen_defs:
                continue
            seen_defs.add(key)
        earlier = seen_files.get(chunk.path, 0)
        seen_files[chunk.path] = earlier + 1
        kept.append(Scored(chunk, item.score - penalty * earlier, item.key))
    return sorted(kept, key=lambda s: -s.score)
