"""What the README's first command costs on a fresh checkout: ``scripts/setup.sh`` (seconds, size of
``.venv``, whether torch came with it), then the first ``codesearch search`` (seconds).

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
    search = [str(venv / "bin" / "codesearch"), "search", QUERY, "--path", ".", "--json"]
    report["search_s"], report["search_rc"] = timed(search, checkout, env, log)
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
    args = parser.parse_args(argv)
    report = measure(args)
    text = json.dumps(report, indent=2)
    if args.save:
        args.save.write_text(text + "\n")
    print(text)
    return 0 if report["setup_rc"] == 0 and report["search_rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
