"""What the README's first command costs on a fresh checkout: ``scripts/setup.sh`` (seconds, size of
``.venv``, whether torch came with it), then the first ``codesearch search`` (seconds to its answer,
which does not wait for embedding) and the seconds from its start until the background indexer it
leaves has embedded the whole tree (``codesearch status --json`` polled every 2 s), then the same
search again (seconds, first hit).

    python bench/install_cost.py [--without-default] [--dev] [--cold] [--work-dir DIR] [--save FILE]

The checkout's files (tracked and untracked, not ignored) are copied into ``--work-dir``/checkout, so
nothing of this checkout's ``.venv`` or caches is reused. ``--without-default`` removes
``models/codesearch_models/default`` from the copy (the install a checkout without a shipped default
model gets: torch and the export extra, and an export on the first search). ``--cold`` gives pip an
empty cache (a first install on a new machine: every wheel downloaded, hnswlib compiled); otherwise
pip's usual cache is used. The search runs with an empty codesearch cache and indexes the copy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average

REPO = Path(__file__).resolve().parent.parent
QUERY = "parse the retry header and back off"


def copy_checkout(dest: Path) -> None:
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, capture_output=True,
                            check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def megabytes(path: Path) -> int:
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sm", str(path)], capture_output=True, text=True, check=True).stdout
    return int(out.split()[0])


def timed(cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[float, int]:
    start = time.perf_counter()
    with log.open("a") as out:
        rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    return round(time.perf_counter() - start, 1), rc


def status(codesearch: Path, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    out = subprocess.run([str(codesearch), "status", ".", "--json"], cwd=cwd, env=env, capture_output=True,
                         text=True, check=False).stdout
    try:
        return dict(json.loads(out))
    except ValueError:
        return {}


def seconds_until_embedded(codesearch: Path, cwd: Path, env: dict[str, str], started: float,
                           timeout: float) -> float | None:
    """From ``started`` until no chunk waits for its vector and no background indexer runs."""
    while time.perf_counter() - started < timeout:
        st = status(codesearch, cwd, env)
        running = st.get("background", {}).get("state") == "running"
        if st.get("indexed") and st.get("chunks") and st.get("pending") == 0 and not running:
            return round(time.perf_counter() - started, 1)
        time.sleep(2)
    return None


def search_again(codesearch: Path, cwd: Path, env: dict[str, str]) -> tuple[float, str | None]:
    """The same search once everything is embedded: seconds, and its first hit."""
    start = time.perf_counter()
    proc = subprocess.run([str(codesearch), "search", QUERY, "--path", ".", "--json", "-k", "1"], cwd=cwd, env=env,
                          capture_output=True, text=True, check=False)
    seconds = round(time.perf_counter() - start, 2)
    try:
        hit = json.loads(proc.stdout)[0]
        return seconds, f"{hit['path']}:{hit['start_line']} {hit['symbol']}"
    except (ValueError, IndexError, KeyError):
        return seconds, None


def measure(args: argparse.Namespace) -> dict[str, Any]:
    work = args.work_dir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    checkout = work / "checkout"
    copy_checkout(checkout)
    if args.without_default:
        shutil.rmtree(checkout / "models" / "codesearch_models" / "default", ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["CODESEARCH_CACHE_DIR"] = str(work / "codesearch-cache")
    if args.cold:
        env["PIP_CACHE_DIR"] = str(work / "pip-cache")
    log = work / "log.txt"
    report: dict[str, Any] = {"command": "python bench/install_cost.py " + " ".join(sys.argv[1:]),
                              "default_shipped": (checkout / "models/codesearch_models/default").is_dir(),
                              "cold_pip_cache": args.cold, "load_before": load_average()}
    setup = ["scripts/setup.sh", "--dev"] if args.dev else ["scripts/setup.sh"]
    report["setup_s"], report["setup_rc"] = timed(setup, checkout, env, log)
    venv = checkout / ".venv"
    site = next(venv.glob("lib/python3*/site-packages"), venv)
    report["venv_mb"] = megabytes(venv)
    report["torch_mb"] = megabytes(site / "torch")
    report["transformers_installed"] = (site / "transformers").is_dir()
    codesearch = venv / "bin" / "codesearch"
    started = time.perf_counter()
    report["search_s"], report["search_rc"] = timed([str(codesearch), "search", QUERY, "--path", "."], checkout,
                                                    env, log)
    report["embedded_after_s"] = seconds_until_embedded(codesearch, checkout, env, started, args.timeout)
    report["search_again_s"], report["top_hit_again"] = search_again(codesearch, checkout, env)
    final = status(codesearch, checkout, env)
    report["files"], report["chunks"], report["model"] = final.get("files"), final.get("chunks"), final.get("model")
    report["load_after"] = load_average()
    report["log"] = str(log)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--without-default", action="store_true", help="no shipped default model in the copy")
    parser.add_argument("--dev", action="store_true", help="scripts/setup.sh --dev (everything the tests need)")
    parser.add_argument("--cold", action="store_true", help="an empty pip cache")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/codesearch-install-cost"))
    parser.add_argument("--save", type=Path, default=None)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the whole tree's vectors")
    args = parser.parse_args(argv)
    report = measure(args)
    text = json.dumps(report, indent=2)
    if args.save:
        args.save.write_text(text + "\n")
    print(text)
    return 0 if report["setup_rc"] == 0 and report["search_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
