"""The real `codesearch` CLI in a subprocess, on the real default model."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixture_repo import make_repo

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "codesearch.cli"]


def run(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, CODESEARCH_SYNC_BUDGET_S="120")  # a first search reads every file, even when busy
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"codesearch {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def search_json(root: Path, query: str, *extra: str) -> list[dict[str, object]]:
    out = run("search", query, "--path", str(root), "--json", *extra)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def indexed_repo(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path) -> Path:
    root = make_repo(tmp_path_factory.mktemp("cli") / "repo")
    (root / "assets").mkdir()
    (root / "assets" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (root / "assets" / "blob.py").write_bytes(b"\x00\x01\x02 not really python \x00")
    (root / "huge.py").write_text("x = 1\n" * 300_000)
    (root / "latin1.py").write_bytes("def caf\xe9_menu():\n    return 'cr\xe8me br\xfbl\xe9e'\n".encode("latin-1"))
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("def leaked_secret_function():\n    return 42\n")
    (root / "escape.py").symlink_to(outside / "secret.py")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    return root


@pytest.fixture(autouse=True)
def shared_index(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's tests share one index folder (the autouse isolated cache gives each test its own)."""
    cache = Path(os.environ["CODESEARCH_CACHE_DIR"])
    shared = tmp_path_factory.getbasetemp() / "cli-cache"
    if not shared.exists():
        shared.mkdir()
        (shared / "models").symlink_to((cache / "models").resolve(), target_is_directory=True)
    monkeypatch.setenv("CODESEARCH_CACHE_DIR", str(shared))


def test_index_summary(indexed_repo: Path) -> None:
    proc = run("index", str(indexed_repo), "--quiet")
    assert "indexed" in proc.stderr and "CPUExecutionProvider" in proc.stderr
    assert "too-large" in proc.stderr and "binary" in proc.stderr
    status = json.loads(run("status", str(indexed_repo), "--json").stdout)
    assert status["pending"] == 0 and status["chunks"] == status["embedded"] > 20
    assert status["stale_files"] == []


@pytest.mark.parametrize(
    ("query", "path", "symbol"),
    [
        ("parse the retry header and back off", "src/http/retry.py", "parse_retry_after"),
        ("how does the connection pool reuse sockets", "src/http/pool.py", None),
        ("parse_retry_after", "src/http/retry.py", "parse_retry_after"),
        ("ConnectionPool.release", "src/http/pool.py", "release"),
        ("sum the prices of items in the cart", "web/src/cart.ts", "cartTotal"),
        ("escape html special characters", "web/src/format.js", "escapeHtml"),
        ("multiply two matrices", "java/src/main/java/com/acme/Matrix.java", "multiply"),
        ("http endpoint reporting the service is alive", "cmd/server/main.go", "healthHandler"),
        ("64-bit FNV hash of bytes", "crates/hash/src/lib.rs", "fnv1a_hash"),
    ],
)
def test_meaningful_queries(indexed_repo: Path, query: str, path: str, symbol: str | None) -> None:
    hits = search_json(indexed_repo, query, "-k", "3")
    assert hits[0]["path"] == path, hits
    if symbol:
        assert hits[0]["symbol"] == symbol, hits


def test_json_schema(indexed_repo: Path) -> None:
    hits = search_json(indexed_repo, "retry", "-k", "5")
    assert 0 < len(hits) <= 5
    for hit in hits:
        assert {"path", "start_line", "end_line", "symbol", "language", "score"} <= set(hit)
        assert isinstance(hit["start_line"], int) and hit["start_line"] >= 1
        assert hit["end_line"] >= hit["start_line"]  # type: ignore[operator]
        assert not str(hit["path"]).startswith("/")


def test_filters(indexed_repo: Path) -> None:
    hits = search_json(indexed_repo, "format a value", "--lang", "javascript", "-k", "5")
    assert hits and all(h["language"] == "javascript" for h in hits)
    hits = search_json(indexed_repo, "socket", "--glob", "src/**/*.py", "-k", "5")
    assert hits and all(str(h["path"]).startswith("src/") for h in hits)


def test_tests_rank_below_source(indexed_repo: Path) -> None:
    hits = search_json(indexed_repo, "parse retry after header", "-k", "5")
    paths = [h["path"] for h in hits]
    assert paths.index("src/http/retry.py") < paths.index("tests/test_retry.py")


def test_skips_and_decoding(indexed_repo: Path) -> None:
    all_hits = search_json(indexed_repo, "leaked secret function", "-k", "50")
    assert all("escape" not in str(h["path"]) for h in all_hits)  # symlinks out of the root
    assert all(h["path"] not in ("huge.py", "assets/logo.png", "assets/blob.py", "build/generated.py", "debug.log")
               for h in all_hits)
    hits = search_json(indexed_repo, "café menu crème brûlée", "-k", "3")
    assert hits[0]["path"] == "latin1.py"


def test_batch(indexed_repo: Path, tmp_path: Path) -> None:
    batch = tmp_path / "queries.jsonl"
    batch.write_text('{"id": 1, "query": "escape html"}\n{"id": "two", "query": "multiply matrices"}\n')
    proc = run("search", "--batch", str(batch), "--path", str(indexed_repo), "-k", "2")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["id"] for line in lines] == [1, "two"]
    assert lines[0]["results"][0]["symbol"] == "escapeHtml"
    assert lines[1]["results"][0]["symbol"] == "multiply"


def test_incremental_edit_delete_rename(indexed_repo: Path) -> None:
    new = indexed_repo / "src" / "http" / "cookies.py"
    new.write_text("def parse_cookie_header(value):\n    \"\"\"Split a Cookie header into a dict.\"\"\"\n"
                   "    return dict(p.strip().split('=', 1) for p in value.split(';'))\n")
    assert search_json(indexed_repo, "split the cookie header into key value pairs")[0]["symbol"] == \
        "parse_cookie_header"
    renamed = indexed_repo / "src" / "http" / "cookie_jar.py"
    new.rename(renamed)
    assert search_json(indexed_repo, "parse_cookie_header")[0]["path"] == "src/http/cookie_jar.py"
    renamed.unlink()
    hits = search_json(indexed_repo, "parse_cookie_header", "-k", "20")
    assert all(h["symbol"] != "parse_cookie_header" for h in hits)


def test_gitignore_change_is_honoured(indexed_repo: Path) -> None:
    gitignore = indexed_repo / ".gitignore"
    original = gitignore.read_text()
    try:
        gitignore.write_text(original + "web/\n")
        hits = search_json(indexed_repo, "escape html", "-k", "20")
        assert all(not str(h["path"]).startswith("web/") for h in hits)
    finally:
        gitignore.write_text(original)
    assert search_json(indexed_repo, "escape html")[0]["path"] == "web/src/format.js"


def test_a_fresh_search_answers_at_once_and_embeds_in_the_background(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "fresh")
    proc = run("search", "parse_retry_after", "--path", str(root), "--json")  # --no-wait is the default
    hits = json.loads(proc.stdout)
    assert hits[0]["symbol"] == "parse_retry_after"
    assert "not embedded yet" in proc.stderr and "embedding in the background (pid" in proc.stderr
    assert "torch" not in proc.stderr
    run("stop", str(root))  # the real model embeds; the test need not wait for it
    status = json.loads(run("status", str(root), "--json").stdout)
    assert status["background"]["state"] in ("finished", "none") and status["chunks"] > 20


def test_corrupt_index_is_rebuilt(indexed_repo: Path) -> None:
    status = json.loads(run("status", str(indexed_repo), "--json").stdout)
    index_dir = Path(status["index_dir"])
    (index_dir / "vectors.hnsw").write_bytes(b"\0garbage" * 100)
    proc = run("search", "escape html", "--path", str(indexed_repo), "--json")
    assert json.loads(proc.stdout)[0]["symbol"] == "escapeHtml"
    assert "rebuilding" in proc.stderr


def test_model_change_reembeds(indexed_repo: Path, default_model_dir: Path, tmp_path: Path) -> None:
    variant = tmp_path / "variant-model"
    variant.mkdir()
    for name in ("model.onnx", "tokenizer.json"):
        (variant / name).symlink_to(default_model_dir / name)
    manifest = json.loads((default_model_dir / "manifest.json").read_text())
    manifest["query_prefix"] = "query: "
    (variant / "manifest.json").write_text(json.dumps(manifest))
    proc = run("index", str(indexed_repo), "--quiet", "--model", str(variant))
    assert "model changed" in proc.stderr
    status = json.loads(run("status", str(indexed_repo), "--json", "--model", str(variant)).stdout)
    assert status["pending"] == 0
    # back to the default: its vectors are still cached, nothing is embedded again
    proc = run("index", str(indexed_repo), "--quiet")
    assert "embedded 0" in proc.stderr


def test_errors_are_actionable(tmp_path: Path) -> None:
    proc = run("search", "", "--path", str(tmp_path), check=False)
    assert proc.returncode == 2 and "query is empty" in proc.stderr
    proc = run("search", "x", "--path", str(tmp_path / "missing"), check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = run("index", str(tmp_path / "empty"), check=False)
    assert proc.returncode == 3 and "no indexable files" in proc.stderr
    bad_model = tmp_path / "not-a-model"
    bad_model.mkdir()
    root = make_repo(tmp_path / "repo")
    proc = run("search", "x", "--path", str(root), "--model", str(bad_model), check=False)
    assert proc.returncode == 4 and "neither an exported codesearch model" in proc.stderr


def test_clean(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo")
    run("search", "x", "--path", str(root), "--no-wait")  # leaves a background indexer embedding
    status = json.loads(run("status", str(root), "--json").stdout)
    assert Path(status["index_dir"]).exists()
    run("clean", str(root))  # stops it first
    assert not Path(status["index_dir"]).exists()
    shutil.rmtree(root)


def test_broken_ranker_degrades_to_retrieval(indexed_repo: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken-ranker"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    for spec in (str(tmp_path / "missing-ranker"), str(broken)):
        proc = run("search", "escape html", "--path", str(indexed_repo), "--json", "--ranker", spec)
        assert json.loads(proc.stdout)[0]["symbol"] == "escapeHtml"
        assert "searching without re-ranking" in proc.stderr


def test_index_refuses_while_another_process_writes(tmp_path: Path) -> None:
    from filelock import FileLock

    root = make_repo(tmp_path / "repo")
    run("search", "x", "--path", str(root), "--mode", "lexical")  # indexes keywords, starts no background indexer
    index_dir = Path(json.loads(run("status", str(root), "--json").stdout)["index_dir"])
    lock = FileLock(str(index_dir / "write.lock"))
    with lock:
        proc = run("index", str(root), check=False)
        assert proc.returncode == 5 and "keeping this index up to date" in proc.stderr
        proc = run("search", "parse_retry_after", "--path", str(root), "--json", "--no-wait")
        assert json.loads(proc.stdout)[0]["symbol"] == "parse_retry_after"


def test_search_path_never_imports_torch(indexed_repo: Path) -> None:
    script = (
        "import sys\n"
        "from codesearch.cli import main\n"
        f"sys.argv = ['codesearch', 'search', 'escape html', '--path', {str(indexed_repo)!r}, '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('loaded:', [m for m in ('torch', 'transformers') if m in sys.modules], file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ),
                          timeout=300, check=True)
    assert json.loads(proc.stdout)[0]["symbol"] == "escapeHtml"
    assert "loaded: []" in proc.stderr
