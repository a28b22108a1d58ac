"""Fault injection against the `codesearch` CLI and `codesearch-ls`: one line per fault, what survived.

Every probe drives the programs as a user would (subprocesses, raw bytes on the server's stdin), so
the same script measures any version: ``--server`` names the checkout's ``server`` folder.

    python bench/faults.py --server /path/to/checkout/server > faults.md

Embeddings come from the seeded fake encoder of the tests (``tests/fakes.py``, through the engine's
``CODESEARCH_ENCODER_FACTORY`` hook): the faults concern storage and protocol, not the model. Runs as
root drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH/CAP_FOWNER with ``setpriv`` for the read-only probes;
the full disk is RLIMIT_FSIZE on the process (SQLite then fails its writes as on a full disk).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))
from common import table_head, table_row  # noqa: E402
from fixture_repo import make_repo  # noqa: E402

UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--inh-caps=-all", "--"]
GEO = ('def haversine(lat1, lon1, lat2, lon2):\n    """Great circle distance between two places on earth, '
       'in kilometres."""\n    return 6371.0 * central_angle(lat1, lon1, lat2, lon2)\n\n\n'
       "def kilometres_to_miles(km):\n    return km * 0.621371\n")
GEO_QUERY = "great circle distance between two places on earth"


class Lab:
    """A scratch folder with its own cache, and the environment that runs the version under test."""

    def __init__(self, server_dir: Path, work: Path) -> None:
        self.work = work
        self.cache = work / "cache"
        self.cache.mkdir(parents=True)
        self.env = {**os.environ, "PYTHONPATH": f"{server_dir}{os.pathsep}{REPO / 'tests'}",
                    "CODESEARCH_ENCODER_FACTORY": "fakes:create_encoder", "CODESEARCH_CACHE_DIR": str(self.cache)}
        self.env.pop("CODESEARCH_TEST_ENCODER_DELAY", None)

    def cli(self, *args: str, prefix: list[str] | None = None, preexec: Callable[[], None] | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*(prefix or []), sys.executable, "-m", "codesearch.cli", *args], capture_output=True,
                              text=True, timeout=300, env=env or self.env, preexec_fn=preexec)

    def index_dir(self) -> Path:
        return next((self.cache / "workspaces").iterdir())


def shown(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit code and the gist of stderr: a traceback, or the last line."""
    if "Traceback" in proc.stderr:
        last = proc.stderr.strip().splitlines()[-1]
        return f"exit {proc.returncode}, traceback ({last[:70]})"
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    return f"exit {proc.returncode}" + (f" ({lines[-1][:90]})" if lines else "")


def unprivileged() -> list[str]:
    return UNPRIVILEGED if os.geteuid() == 0 else []


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    paths = [p for p in [folder, *folder.rglob("*")] if not p.is_symlink()]
    for p in paths:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for p in paths:
            p.chmod(p.stat().st_mode | 0o200)


def file_size_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def corrupt_copies(folder: Path) -> int:
    return sum(1 for p in folder.iterdir() if ".corrupt-" in p.name)


def embedded_count(proc: subprocess.CompletedProcess[str]) -> str:
    found = re.search(r"; embedded (\d+)", proc.stderr)
    return found.group(1) if found else "?"


# CLI probes -------------------------------------------------------------------------------------
def full_disk(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("index", str(root))
    (root / "src" / "fresh.py").write_text("".join(f"def fresh_{i}(v):\n    return v + {i}\n\n\n" for i in range(30)))
    limited = [lab.cli("index", str(root), preexec=file_size_limit(16 << 10)) for _ in range(2)]
    search = lab.cli("search", "parse_retry_after", "--path", str(root), "--json", preexec=file_size_limit(16 << 10))
    copies = corrupt_copies(lab.index_dir())
    healed = lab.cli("index", str(root))
    answered = search.returncode == 0 and "parse_retry_after" in search.stdout
    return (f"index on full disk: {shown(limited[0])}; again: {shown(limited[1])}; search: "
            f"{'answered' if answered else shown(search)}; moved-aside copies: {copies}; after space returns: "
            f"embedded {embedded_count(healed)} (30 new)")


def read_only_cache(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    out = []
    with read_only(lab.cache):
        for args in (["index", str(root)], ["search", "retry", "--path", str(root)], ["status", str(root)],
                     ["clean", str(root)]):
            out.append(f"{args[0]}: {shown(lab.cli(*args, prefix=unprivileged()))}")
    return "; ".join(out)


def read_only_index(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("index", str(root))
    folder = lab.index_dir()
    before = sorted(p.name for p in folder.iterdir())
    with read_only(lab.cache):
        search = lab.cli("search", "parse_retry_after", "--path", str(root), "--json", prefix=unprivileged())
        index = lab.cli("index", str(root), prefix=unprivileged())
    same = sorted(p.name for p in folder.iterdir()) == before
    answered = search.returncode == 0 and "parse_retry_after" in search.stdout
    return (f"search: {'answered' if answered else shown(search)}; index: {shown(index)}; "
            f"files {'untouched' if same else 'renamed/added'}")


def damage_twice(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    notes = []
    for _ in range(2):
        lab.cli("index", str(root))
        db = lab.index_dir() / "index.db"
        for suffix in ("-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        with open(db, "r+b") as fh:
            fh.truncate(db.stat().st_size // 2)
        proc = lab.cli("index", str(root))
        notes.append("said" if "moved aside" in proc.stderr else "silent")
    return f"half-truncated database: rebuilt ({', '.join(notes)}); copies kept: {corrupt_copies(lab.index_dir())}"


def empty_database(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("index", str(root))
    db = lab.index_dir() / "index.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.write_bytes(b"")
    proc = lab.cli("index", str(root))
    said = "empty" in proc.stderr
    return f"{shown(proc).split(' (')[0]}, re-embedded {embedded_count(proc)}; {'said so' if said else 'no message'}"


def fifo(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    os.mkfifo(root / "pipe.py")
    proc = lab.cli("index", str(root))
    skipped = next((ln for ln in proc.stderr.splitlines() if ln.startswith("skipped:")), "")
    return f"{shown(proc).split(' (')[0]}; {skipped.split(';')[0]}"


def lock_is_a_folder(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("index", str(root))
    lock = lab.index_dir() / "write.lock"
    lock.unlink(missing_ok=True)
    lock.mkdir()
    return f"index: {shown(lab.cli('index', str(root)))}"


def ctrl_c(lab: Lab) -> str:
    root = lab.work / "repo"
    root.mkdir()
    for f in range(40):
        (root / f"mod_{f}.py").write_text("".join(f"def h_{f}_{i}(e):\n    return e.get('k{i}')\n\n\n"
                                                  for i in range(16)))
    env = {**lab.env, "CODESEARCH_TEST_ENCODER_DELAY": "0.3"}
    proc = subprocess.Popen([sys.executable, "-m", "codesearch.cli", "index", str(root), "--quiet"],
                            stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            db = sqlite3.connect(f"file:{lab.index_dir() / 'index.db'}?mode=ro", uri=True)
            if db.execute("SELECT count(*) FROM vectors").fetchone()[0]:
                break
        except (sqlite3.Error, StopIteration, FileNotFoundError):
            continue
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    again = lab.cli("index", str(root))
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return f"exit {proc.returncode}: {last[:110]}; next run embedded {embedded_count(again)} of 640"


def status_and_clean(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("status", str(root))
    created = (lab.cache / "workspaces").exists() and any((lab.cache / "workspaces").iterdir())
    lab.cli("clean", str(root)) if created else None
    lab.cli("index", str(root))
    first, second = lab.cli("clean", str(root)), lab.cli("clean", str(root))
    return (f"status of an unindexed folder: {'created an index folder' if created else 'created nothing'}; "
            f"clean twice: '{first.stderr.strip()[:25]}…', then '{second.stderr.strip()[:40]}'")


def busy_hint(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from fakes import FakeEncoder; from codesearch.engine import Engine\n"
        f"e = Engine({str(root)!r}, encoder=FakeEncoder()); e.acquire_writer(wait=False); e.sync()\n"
        "print('ready', flush=True); time.sleep(60)")], stdout=subprocess.PIPE, text=True, env=lab.env)
    assert holder.stdout is not None
    holder.stdout.readline()
    try:
        proc = lab.cli("search", "parse retry after", "--path", str(root))
    finally:
        holder.kill()
        holder.wait()
    hint = next((ln for ln in proc.stderr.splitlines() if "not embedded yet" in ln), "")
    return hint.split("(", 1)[-1].rstrip(")")[:100]


def long_query(lab: Lab) -> str:
    root = make_repo(lab.work / "repo")
    lab.cli("index", str(root))
    query_file = lab.work / "q.jsonl"
    query_file.write_text(json.dumps({"id": 1, "query": " ".join(f"word{i}" for i in range(120_000))}) + "\n")
    start = time.monotonic()
    proc = lab.cli("search", "--batch", str(query_file), "--path", str(root), "--no-wait")
    took = time.monotonic() - start
    return f"1.2 MB of distinct words: {took:.1f}s for the whole command ({shown(proc).split(' (')[0]})"


def stubs(lab: Lab) -> str:
    root = lab.work / "repo"
    (root / "stubs").mkdir(parents=True)
    for i in range(60):
        (root / f"u{i}.py").write_text(f"def unique_{i}_w{i * 7 % 13}(x):\n    '''topic {i} word{i * 3}'''\n"
                                       "    return x\n")
    for i in range(5000):
        (root / "stubs" / f"s{i}.py").write_text("def handler(request):\n    '''generated stub'''\n"
                                                  "    raise NotImplementedError\n")
    lab.cli("index", str(root))
    db = sqlite3.connect(lab.index_dir() / "index.db")
    rows = db.execute("SELECT container, symbol, text, path FROM chunks WHERE path LIKE 'u%'").fetchall()
    batch = lab.work / "b.jsonl"
    batch.write_text("".join(json.dumps({"id": path, "query": f"{c}.{s}\n{t}" if c and s else t}) + "\n"
                             for c, s, t, path in rows))
    proc = lab.cli("search", "--batch", str(batch), "--path", str(root), "--mode", "dense", "-k", "1", "--no-wait")
    found = sum(1 for line in proc.stdout.splitlines()
                if (r := json.loads(line))["results"] and r["results"][0]["path"] == r["id"])
    graph = (lab.index_dir() / "vectors.hnsw").stat().st_size
    return f"unique functions found by their own vector: {found}/{len(rows)}; vectors.hnsw {graph / 1e6:.2f} MB"


# server probes ------------------------------------------------------------------------------------
class RawServer:
    def __init__(self, lab: Lab, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "codesearch.lsp", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=lab.env)
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while (line := out.readline()) not in (b"\r\n", b""):
                if line.startswith(b"Content-Length:"):
                    length = int(line.split(b":")[1])
            if not line or length is None:
                self.messages.put(None)
                return
            self.messages.put(json.loads(out.read(length)))

    def send(self, raw: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(raw)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def request(self, msg_id: Any, method: str, params: Any) -> None:
        self.send(frame({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}))

    def until(self, msg_id: Any, timeout: float) -> list[dict[str, Any]] | None:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                message = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            if message is None:
                return None
            got.append(message)
            if message.get("id") == msg_id and "method" not in message:
                return got
        return None

    def start(self, root_uri: str | None) -> None:
        folders = [{"uri": root_uri, "name": "repo"}] if root_uri else None
        self.request(0, "initialize", {"processId": None, "rootUri": root_uri, "capabilities": {},
                                       "workspaceFolders": folders})
        self.until(0, 20)
        self.send(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def frame(message: Any) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def edit_beside_unchanged(lab: Lab) -> str:
    root = lab.work / "repo"
    root.mkdir()
    (root / "geo.py").write_text(GEO)
    (root / "text.py").write_text("def slugify(title):\n    return '-'.join(title.lower().split())\n")
    server = RawServer(lab)
    server.start(root.as_uri())
    ids = iter(range(1, 10_000))

    def search(query: str) -> list[dict[str, Any]]:
        msg_id = next(ids)
        server.request(msg_id, "codesearch/search", {"query": query, "limit": 3})
        got = server.until(msg_id, 20) or [{}]
        return list(got[-1].get("result", {}).get("results", []))

    def settle(predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 20
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)

    try:
        settle(lambda: any("dense" in h["sources"] for h in search(GEO_QUERY)))
        before = search(GEO_QUERY)
        (root / "geo.py").write_text(GEO + "\n\ndef unrelated_helper(items):\n    return sorted(items)\n")
        settle(lambda: any(h["symbol"] == "unrelated_helper" for h in search("unrelated_helper")))
        after = search(GEO_QUERY)
    finally:
        server.close()

    def describe(hits: list[dict[str, Any]]) -> str:
        return ", ".join(f"{h['symbol']} [{'+'.join(h['sources'])}]" for h in hits[:2])

    return f"before the edit: {describe(before)}; after: {describe(after)}"


BODY = json.dumps({"jsonrpc": "2.0", "id": "lost", "method": "workspace/symbol", "params": {"query": "x"}}).encode()
FRAMING: dict[str, bytes] = {
    "Content-Length too short": b"Content-Length: %d\r\n\r\n" % (len(BODY) - 10) + BODY,
    "Content-Length too long": b"Content-Length: %d\r\n\r\n" % (len(BODY) + 10) + BODY,
    "Content-Length not a number": b"Content-Length: abc\r\n\r\n" + BODY,
    "Content-Length missing": b"Content-Type: application/json\r\n\r\n" + BODY,
    "Content-Length: 10^12": b"Content-Length: 1000000000000\r\n\r\n" + BODY,
    "invalid JSON": b"Content-Length: 5\r\n\r\n{oops",
    "request without a method": frame({"jsonrpc": "2.0", "id": 7}),
    "id is an object": frame({"jsonrpc": "2.0", "id": {"a": 1}, "method": "workspace/symbol",
                              "params": {"query": "x"}}),
    "workspace/symbol query 5": frame({"jsonrpc": "2.0", "id": 8, "method": "workspace/symbol",
                                       "params": {"query": 5}}),
    "workspace/symbol query null": frame({"jsonrpc": "2.0", "id": 9, "method": "workspace/symbol",
                                          "params": {"query": None}}),
    "workspace/symbol query object": frame({"jsonrpc": "2.0", "id": 10, "method": "workspace/symbol",
                                            "params": {"query": {}}}),
}


def framing(lab: Lab, name: str) -> str:
    server = RawServer(lab)
    try:
        server.start(None)
        server.send(FRAMING[name])
        server.request(100, "workspace/symbol", {"query": "x"})
        got = server.until(100, 8)
        alive = server.proc.poll() is None
    finally:
        server.close()
    if got is None:
        return "next request unanswered" + ("" if alive else ", server died")
    errors = [f"{m['error']['code']} (id {json.dumps(m.get('id', 'absent'))})" for m in got
              if "error" in m and "method" not in m]
    answer = "results" if any(m.get("id") in (8, 9, 10) and "result" in m for m in got) else ""
    return f"answered: {', '.join(errors) or answer or 'nothing'}; next request answered"


PROBES: list[tuple[str, Callable[[Lab], str]]] = [
    ("edit beside an unchanged function (running server)", edit_beside_unchanged),
    ("5,000 identical stubs beside 60 unique functions", stubs),
    ("full disk (RLIMIT_FSIZE 16 KiB)", full_disk),
    ("empty read-only cache", read_only_cache),
    ("read-only intact index", read_only_index),
    ("database cut in half, twice", damage_twice),
    ("0-byte index.db", empty_database),
    ("fifo named pipe.py", fifo),
    ("write.lock replaced by a folder", lock_is_a_folder),
    ("Ctrl-C during embedding", ctrl_c),
    ("status/clean of an unindexed workspace", status_and_clean),
    ("hint while another process owns the index", busy_hint),
    ("1 MB query", long_query),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", type=Path, default=REPO / "server", help="the checkout's server folder")
    parser.add_argument("--only", default="", help="run the probes whose name contains this")
    args = parser.parse_args()
    probes = [*PROBES, *((f"server: {n}", lambda lab, n=n: framing(lab, n)) for n in FRAMING)]
    print(table_head(["fault injected", "outcome"]))
    for name, probe in probes:
        if args.only and args.only not in name:
            continue
        work = Path(tempfile.mkdtemp(prefix="codesearch-faults-"))
        try:
            outcome = probe(Lab(args.server.resolve(), work))
        except Exception as exc:  # a probe that breaks says so in its row
            outcome = f"probe failed: {type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(table_row([name, outcome]), flush=True)


if __name__ == "__main__":
    main()
