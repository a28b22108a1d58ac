"""The language server's pure parts: settings, request validation, result conversion, the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from codesearch.lsp.__main__ import parse_args
from codesearch.lsp.server import hit_json, hit_symbol, parse_search_params, under_folder
from codesearch.lsp.settings import Settings, parse_settings
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
    args = parse_search_params({"query": "  retry  ", "languages": "Python", "pathGlob": "src/**", "limit": 1000})
    assert args == {"query": "retry", "limit": 200, "languages": ["python"], "path_glob": "src/**", "folder": None}
    assert parse_search_params({"query": "x", "limit": None})["limit"] == 20
    bad: object
    for bad in (None, [], {"query": " "}, {"query": "x", "limit": 2.5}, {"query": "x", "limit": True},
                {"query": "x", "languages": [1]}, {"query": "x", "pathGlob": 1}, {"query": "x", "folder": 1}):
        with pytest.raises(JsonRpcInvalidParams):
            parse_search_params(bad)


def test_folder_inside_a_workspace_folder_becomes_an_anchored_glob() -> None:
    from codesearch.search import glob_match

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
        "symbol": "parse_retry_after", "kind": "function", "language": "python", "score": 0.8765,
        "snippet": "def parse_retry_after(header: str) -> float:",
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
    code = ("import sys, codesearch.lsp.server, codesearch.lsp.__main__, codesearch.watcher; "
            "s = codesearch.lsp.server.create_server(); "
            "bad = [m for m in ('torch', 'transformers', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
    out = subprocess.run([sys.executable, "-m", "codesearch.lsp", "--version"], capture_output=True, text=True,
                         check=True)
    assert out.stdout.startswith("codesearch-ls ")


def test_shared_encoder_loads_once_and_delegates() -> None:
    from codesearch.engine import EngineConfig
    from codesearch.lsp.encoders import SharedEncoder
    from codesearch.lsp.testing import FakeEncoder

    made: list[object] = []

    def loader(config: EngineConfig, on_status: object = None) -> FakeEncoder:
        made.append(on_status)
        return FakeEncoder()

    shared = SharedEncoder(EngineConfig(), loader=loader)
    assert not shared.loaded and shared.manifest is None
    with pytest.raises(RuntimeError):
        shared.encode_queries(["x"])
    shared.load(print)
    shared.load(print)
    assert shared.loaded and made == [print]  # one model for every folder, loaded once
    assert (shared.dimension, shared.model_key, shared.provider) == (64, "fake-1", "CPUExecutionProvider")
    reference = FakeEncoder()
    assert (shared.encode_queries(["retry"]) == reference.encode_queries(["retry"])).all()
    assert (shared.encode_documents(["def f(): pass"]) == reference.encode_documents(["def f(): pass"])).all()



def test_ranker_settings() -> None:
    settings, warnings = parse_settings({"codesearch": {"ranker": " /models/ranker ", "rerankK": 20}})
    assert (settings.ranker, settings.rerank_k, warnings) == ("/models/ranker", 20, [])
    config = settings.engine_config()
    assert (config.ranker, config.rerank_k) == ("/models/ranker", 20)
    bad, warnings = parse_settings({"ranker": 3, "rerankK": 1}, settings)
    assert (bad.ranker, bad.rerank_k) == ("/models/ranker", 20) and len(warnings) == 2
    cleared, _ = parse_settings({"ranker": None, "rerankK": None}, settings)
    assert cleared.ranker is None and cleared.engine_config().ranker is None
