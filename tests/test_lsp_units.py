"""The language server's pure parts: settings, request validation, result conversion, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from codesearch.lsp.__main__ import parse_args
from codesearch.lsp.protocol import SearchParams, hit_json, hit_symbol
from codesearch.lsp.settings import Settings, parse_settings
from codesearch.query.filters import under_folder
from codesearch.types import SearchHit
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams


def test_settings_from_initialization_options_and_configuration() -> None:
    settings, warnings = parse_settings({"model": "/models/mine", "device": "CUDA", "exclude": ["a/**", ""],
                                         "maxFileSize": 2048})
    assert settings == Settings(model="/models/mine", device="cuda", exclude=("a/**",), max_file_size=2048)
    assert warnings == []
    config = settings.engine_config()
    assert (config.model, config.device, config.exclude, config.max_file_size) == ("/models/mine", "cuda",
                                                                                    ("a/**",), 2048)
    # didChangeConfiguration: under settings.codesearch, or flat; missing keys keep their value
    nested, _ = parse_settings({"codesearch": {"device": "cpu"}}, settings)
    assert nested == Settings(model="/models/mine", device="cpu", exclude=("a/**",), max_file_size=2048)
    flat, _ = parse_settings({"model": None, "exclude": "b/**"}, settings)
    assert flat.model is None and flat.exclude == ("b/**",)
    assert parse_settings({"python": {"x": 1}}, settings)[0] == settings  # someone else's settings
    assert parse_settings(None, settings)[0] == settings


def test_null_sets_the_default_and_a_missing_key_keeps_its_value() -> None:
    custom = Settings(model="/m", device="cpu", exclude=("a/**",), max_file_size=10, ranker="/r", rerank_k=20)
    assert parse_settings({"codesearch": {}}, custom) == (custom, [])
    cleared, warnings = parse_settings({"codesearch": dict.fromkeys(Settings().to_json())}, custom)
    assert (cleared, warnings) == (Settings(), [])


def test_bad_settings_are_reported_and_ignored() -> None:
    settings, warnings = parse_settings({"model": 3, "device": "gpu", "exclude": [1], "maxFileSize": -5})
    assert settings == Settings()
    assert len(warnings) == 4
    assert parse_settings("nonsense")[1]
    assert parse_settings({"maxFileSize": True})[1]


def test_search_params_validation() -> None:
    params = SearchParams.from_json({"query": "  retry  ", "languages": "Python", "pathGlob": "src/**", "limit": 1000})
    assert params == SearchParams(query="retry", limit=200, languages=("python",), path_glob="src/**", folder=None)
    assert SearchParams.from_json({"query": "x", "limit": None}).limit == 20
    bad: object
    for bad in (None, [], {"query": " "}, {"query": 5}, {"query": "x", "limit": 2.5}, {"query": "x", "limit": True},
                {"query": "x", "languages": [1]}, {"query": "x", "pathGlob": 1}, {"query": "x", "folder": 1}):
        with pytest.raises(JsonRpcInvalidParams):
            SearchParams.from_json(bad)
    with pytest.raises(JsonRpcInvalidParams, match=r"'pyhton' .*did you mean 'python'.*known languages: .*typescript"):
        SearchParams.from_json({"query": "x", "languages": ["pyhton"]})


def test_folder_inside_a_workspace_folder_becomes_an_anchored_glob() -> None:
    from codesearch.query.filters import glob_match

    assert under_folder("src", None) == "src/**"
    assert glob_match("src/http/retry.py", "src/**") and not glob_match("crates/hash/src/lib.rs", "src/**")
    assert under_folder("src", "*.py") == "src/**/*.py"
    assert under_folder("src", "http/") == "src/http/**"
    assert under_folder("src", "http/*.py") == "src/http/*.py"


def hit(**kw: object) -> SearchHit:
    base: dict[str, object] = dict(path="src/http/retry.py", start_line=7, end_line=12, symbol="parse_retry_after",
                                   container="", kind="function", language="python", score=0.87654321,
                                   snippet="def parse_retry_after(header: str) -> float:")
    base.update(kw)
    return SearchHit(**base)


def test_results_and_symbols(tmp_path: Path) -> None:
    result = hit_json(tmp_path, hit())
    assert result == {
        "uri": (tmp_path / "src/http/retry.py").as_uri(),
        "range": {"start": {"line": 6, "character": 0}, "end": {"line": 12, "character": 0}},
        "path": "src/http/retry.py", "start_line": 7, "end_line": 12,
        "symbol": "parse_retry_after", "container": "", "qualified_name": "parse_retry_after",
        "kind": "function", "language": "python", "score": 0.8765,
        "snippet": "def parse_retry_after(header: str) -> float:", "sources": [],
        "match_start_line": 7, "match_end_line": 12,
    }
    method = hit_symbol(tmp_path, hit(symbol="acquire", container="ConnectionPool", kind="method"))
    assert (method.name, method.kind, method.container_name) == ("ConnectionPool.acquire", types.SymbolKind.Method,
                                                                 "src/http/retry.py")
    window = hit_symbol(tmp_path, hit(symbol="", kind="window", path="a/b/notes.txt", start_line=41))
    assert (window.name, window.kind) == ("notes.txt:41", types.SymbolKind.File)
    for kind, expected in [("class", types.SymbolKind.Class), ("module", types.SymbolKind.Module),
                           ("function", types.SymbolKind.Function)]:
        assert hit_symbol(tmp_path, hit(kind=kind)).kind == expected


def test_command_line() -> None:
    args = parse_args(["--stdio", "--clientProcessId=123"])
    assert not args.tcp and args.ignored == ["--clientProcessId=123"]
    args = parse_args(["--tcp", "--port", "9999"])
    assert args.tcp and args.port == 9999


def test_server_imports_no_torch() -> None:
    code = ("import sys, codesearch.lsp.server, codesearch.lsp.__main__, codesearch.service.watcher; "
            "s = codesearch.lsp.server.create_server(); "
            "bad = [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "codesearch.lsp", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("codesearch-ls ")


def test_one_encoder_per_model_and_device_for_the_whole_process(monkeypatch: pytest.MonkeyPatch,
                                                                  tmp_path: Path) -> None:
    from codesearch.embed import loading
    from codesearch.engine import Engine, EngineConfig
    from fakes import FakeEncoder

    made: list[tuple[str | None, str]] = []

    def factory(model: str | None, device: str) -> FakeEncoder:
        made.append((model, device))
        return FakeEncoder()

    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.setenv(loading.ENCODER_FACTORY_ENV, "test_lsp_units:FACTORY")
    monkeypatch.setitem(globals(), "FACTORY", factory)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one = Engine(tmp_path / "a", EngineConfig(device="cpu"), index_dir=tmp_path / "ia")
    two = Engine(tmp_path / "b", EngineConfig(device="cpu"), index_dir=tmp_path / "ib")
    assert one.encoder is two.encoder and made == [(None, "cpu")]  # every folder shares one model
    three = Engine(tmp_path / "a", EngineConfig(device="auto"), index_dir=tmp_path / "ic")
    assert three.encoder is not one.encoder and made == [(None, "cpu"), (None, "auto")]
    for engine in (one, two, three):
        engine.close()


def test_a_model_that_cannot_load_leaves_keyword_search(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from codesearch.embed import loading
    from codesearch.engine import Engine, EngineConfig

    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.delenv(loading.ENCODER_FACTORY_ENV, raising=False)
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "retry.py").write_text("def parse_retry_after(value):\n    return int(value)\n")
    engine = Engine(tmp_path / "repo", EngineConfig(model=str(tmp_path / "no-such-model")), index_dir=tmp_path / "i")
    with engine.writing():
        engine.sync()
    result = engine.search("parse_retry_after")
    assert [h.symbol for h in result.hits] == ["parse_retry_after"]
    assert result.dense_skipped and "no-such-model" in result.dense_skipped
    assert not engine.load_encoder() and "no-such-model" in engine.status().model_problem
    engine.close()


def test_ranker_settings() -> None:
    settings, warnings = parse_settings({"codesearch": {"ranker": " /models/ranker ", "rerankK": 20}})
    assert (settings.ranker, settings.rerank_k, warnings) == ("/models/ranker", 20, [])
    config = settings.engine_config()
    assert (config.ranker, config.rerank_k) == ("/models/ranker", 20)
    bad, warnings = parse_settings({"ranker": 3, "rerankK": 1}, settings)
    assert (bad.ranker, bad.rerank_k) == ("/models/ranker", 20) and len(warnings) == 2
    cleared, _ = parse_settings({"ranker": None, "rerankK": None}, settings)
    assert cleared.ranker is None and cleared.engine_config().ranker is None
