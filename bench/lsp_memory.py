"""Peak memory (RSS) of codesearch-ls while it indexes a large repository.

Starts the real server over stdio, initializes it on the repository, samples the resident set
size of the server process (and any child, e.g. a one-time model export) every 100 ms until the
server reports ``ready`` (or ``--max-seconds`` pass), then shuts it down and prints a summary.

    python bench/lsp_memory.py --repo /path/to/big/repo                 # the real default model
    python bench/lsp_memory.py --repo /path/to/big/repo --fake-encoder  # walk/chunk/store/HNSW only
    python bench/lsp_memory.py --synthetic 20000 --fake-encoder         # a generated repository

With the real model on CPU, embedding runs at roughly 15-20 chunks/s, so a large repository takes
hours: ``--max-seconds`` stops the run and reports the peak seen so far (memory plateaus once
embedding is under way, because the engine embeds and stores in fixed-size batches).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

MB = 1024 * 1024


class Server:
    """A minimal JSON-RPC client over the server's stdio: enough to initialize, watch status, stop."""

    def __init__(self, cmd: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sys.stderr, env=env)
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.status: dict[str, Any] = {}
        self.progress: list[dict[str, Any]] = []
        self.answered: dict[int, float] = {}  # request id -> when its response arrived
        self._next_id = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any) -> int:
        self._next_id += 1
        self._send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = 0
            while True:
                line = stream.readline()
                if not line:
                    return
                if line in (b"\r\n", b"\n"):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            message = json.loads(stream.read(length))
            method = message.get("method")
            if method and "id" in message:  # a request from the server: progress tokens, registrations
                self._send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            elif method == "codesearch/status":
                self.status = message["params"]
            elif method == "$/progress":
                self.progress.append(message["params"]["value"])
            elif not method and "id" in message:
                self.answered[message["id"]] = time.monotonic()
            self.messages.put(message)

    def wait_response(self, msg_id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if message.get("id") == msg_id and "method" not in message:
                return message
        raise TimeoutError(f"no response to request {msg_id}")


def tree_rss(proc: psutil.Process) -> tuple[int, int]:
    """(server RSS, server + children RSS) in bytes."""
    try:
        own = proc.memory_info().rss
    except psutil.Error:
        return 0, 0
    total = own
    for child in proc.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += child.memory_info().rss
    return own, total


def make_synthetic(root: Path, files: int) -> Path:
    """Python files with several documented functions and a class each (about 8 chunks a file)."""
    for i in range(files):
        folder = root / f"pkg{i // 500}" / f"mod{(i // 50) % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        funcs = "\n\n".join(
            f'def handle_{i}_{j}(request, retries={j}):\n    """Handle request {j} of module {i}: validate, '
            f'retry and log."""\n    for attempt in range(retries):\n        if request.ok(attempt):\n'
            f'            return request.value * {j}\n    raise ValueError("failed {i}/{j}")\n'
            for j in range(6))
        cls = (f"class Service{i}:\n    def __init__(self, pool):\n        self.pool = pool\n\n"
               f"    def run(self, item):\n        return self.pool.submit(item, {i})\n")
        (folder / f"file_{i}.py").write_text(f'"""Module {i}."""\n\n{funcs}\n\n{cls}')
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--repo", type=Path, help="the repository to index")
    source.add_argument("--synthetic", type=int, metavar="FILES", help="generate a repository of this many files")
    parser.add_argument("--fake-encoder", action="store_true", help="use the seeded fake encoder (no model)")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop after this long (default 900)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="CODESEARCH_CACHE_DIR for the run (default: a fresh temporary folder, so the index "
                             "is built from scratch; exported models are taken from the usual cache)")
    parser.add_argument("--probe", default="read a configuration file and parse its sections", metavar="QUERY",
                        help="send this codesearch/search every 5 s while indexing and report the latency")
    parser.add_argument("--json", type=Path, default=None, help="also write the summary here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="codesearch-bench-"))
    repo = make_synthetic(work / "repo", args.synthetic) if args.synthetic else args.repo.resolve()
    cache = args.cache_dir or work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    shared_models = Path(os.environ.get("CODESEARCH_CACHE_DIR", Path.home() / ".cache" / "codesearch")) / "models"
    if not args.cache_dir and shared_models.is_dir() and not (cache / "models").exists():
        (cache / "models").symlink_to(shared_models, target_is_directory=True)
    env = dict(os.environ, CODESEARCH_CACHE_DIR=str(cache))
    if args.fake_encoder:
        env["CODESEARCH_TEST_FAKE_ENCODER"] = "1"
    else:
        env.pop("CODESEARCH_TEST_FAKE_ENCODER", None)

    server = Server([sys.executable, "-m", "codesearch.lsp"], env)
    proc = psutil.Process(server.proc.pid)
    started = time.monotonic()
    init = server.request("initialize", {
        "processId": os.getpid(), "rootUri": repo.as_uri(),
        "workspaceFolders": [{"uri": repo.as_uri(), "name": repo.name}],
        "capabilities": {"window": {"workDoneProgress": True}}, "initializationOptions": {"device": "cpu"}})
    server.wait_response(init, 60)
    server.notify("initialized", {})
    initialized = time.monotonic() - started

    peak_own = peak_total = 0
    peak_sync = 0  # before embedding starts: walking, chunking, the store and the lexical index
    samples: list[tuple[float, int, str]] = []
    probes: list[float] = []  # round trips of searches made while indexing
    probe: tuple[int, float] | None = None
    last_probe = 0.0
    synced_at: float | None = None
    finished = False
    while time.monotonic() - started < args.max_seconds:
        own, total = tree_rss(proc)
        peak_own, peak_total = max(peak_own, own), max(peak_total, total)
        status = server.status
        now = time.monotonic() - started
        if synced_at is None and status.get("message") in ("loading the model", "embedding"):
            synced_at = now
        if synced_at is None:
            peak_sync = max(peak_sync, own)
        if not samples or now - samples[-1][0] >= 5:
            samples.append((now, own, status.get("message", "")))
            print(f"{now:7.1f}s  rss {own / MB:7.1f} MiB  {status.get('state', '?'):8s} "
                  f"{status.get('message', '')[:40]:40s} files {status.get('files', 0)} "
                  f"chunks {status.get('chunks', 0)} embedded {status.get('embedded', 0)}", flush=True)
        if probe is not None and probe[0] in server.answered:
            probes.append(server.answered[probe[0]] - probe[1])
            probe = None
        if probe is None and args.probe and status.get("state") == "indexing" and now - last_probe >= 5:
            last_probe = now
            probe = (server.request("codesearch/search", {"query": args.probe, "limit": 10}), time.monotonic())
        if status.get("state") in ("ready", "error") and now > 1.0:
            finished = True
            break
        if server.proc.poll() is not None:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    status = dict(server.status)
    try:
        server.wait_response(server.request("shutdown", None), 60)
        server.notify("exit", None)
        server.proc.wait(30)
    except Exception:
        server.proc.kill()

    summary = {
        "repo": str(repo), "encoder": "fake" if args.fake_encoder else "default model (CPU)",
        "finished": finished, "seconds": round(elapsed, 1), "initialize_s": round(initialized, 2),
        "sync_s": round(synced_at, 1) if synced_at is not None else None,
        "files": status.get("files"), "chunks": status.get("chunks"), "embedded": status.get("embedded"),
        "state": status.get("state"), "message": status.get("message"),
        "peak_rss_before_embedding_mib": round(peak_sync / MB, 1),
        "peak_rss_mib": round(peak_own / MB, 1), "peak_rss_with_children_mib": round(peak_total / MB, 1),
        "search_while_indexing_ms": {
            "count": len(probes),
            "median": round(1000 * sorted(probes)[len(probes) // 2]) if probes else None,
            "max": round(1000 * max(probes)) if probes else None,
        },
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
