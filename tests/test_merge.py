"""Hits of several indexes merged by score order like one index holding them all (query.merge)."""

from __future__ import annotations

from pathlib import Path

from codesearch.engine import Engine
from codesearch.query.merge import merge_hits
from fakes import FakeEncoder
from fixture_repo import make_repo
from test_cli_ranking import FILES as RANKING_FILES

QUERIES = [
    "parse the retry after header", "exponential backoff with jitter", "ConnectionPool", "reuse idle sockets",
    "Console", "einsum", "escape html", "hash a byte slice", "element equal within a limit", "multiply matrices",
    "RetryingClient.send", "where is the Progress class implemented", "lru cache eviction", "health check handler",
]


def test_merging_two_indexes_orders_like_one_index_holding_both(tmp_path: Path) -> None:
    both = tmp_path / "both"
    first, second = make_repo(both / "a"), make_repo(both / "b", RANKING_FILES)
    engines = {name: Engine(root, encoder=FakeEncoder(), index_dir=tmp_path / f"index-{name}")
               for name, root in (("a", first), ("b", second), ("both", both))}
    try:
        for engine in engines.values():
            engine.update()
        same_top, same_top5 = 0, 0
        for query in QUERIES:
            merged = merge_hits([(name, engines[name].search(query, limit=10).hits) for name in ("a", "b")], 10)
            as_merged = [(f"{name}/{hit.path}", hit.start_line, hit.score) for name, hit in merged]
            as_one = [(hit.path, hit.start_line, hit.score) for hit in engines["both"].search(query, limit=50).hits]
            same_top += as_merged[0][:2] == as_one[0][:2]
            same_top5 += [h[:2] for h in as_merged[:5]] == [h[:2] for h in as_one[:5]]
            # A chunk scores (nearly) the same alone and with the other index beside it: only the idf of
            # the lexical share is counted per index. (BM25 over the best candidate's moved them by 0.1.)
            one = {h[:2]: h[2] for h in as_one}
            for path, line, score in as_merged:
                if (path, line) in one:
                    assert abs(score - one[path, line]) < 0.03, (query, path, line, score, one[path, line])
        assert same_top == len(QUERIES)
        assert same_top5 >= len(QUERIES) - 2, same_top5
    finally:
        for engine in engines.values():
            engine.close()
