"""Searching needs neither torch nor transformers when the default model ships exported.

Two checks: a subprocess of this interpreter in which importing torch or transformers fails, with an
empty cache (so nothing exported earlier can help); and a real virtual environment holding a normal
(non-editable) install of this repository without the train/export extras. Where no default model is
shipped (models/codesearch_models/default), a tiny exported stand-in takes its place.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from conftest import source_copy
from fixture_repo import make_repo

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "models" / "codesearch_models" / "default"

BLOCKER = """
import importlib.abc, sys
attempts = []
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            attempts.append(name)
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Blocker())
from codesearch.cli import main
sys.argv = ["codesearch", *sys.argv[1:]]
try:
    main()
finally:
    print("attempted:", sorted(set(attempts)), file=sys.stderr)
"""


def _check_hits(stdout: str) -> None:
    hits = json.loads(stdout)
    assert hits
    if (SHIPPED / "manifest.json").is_file():  # the real model answers; the stand-in only runs
        assert hits[0]["symbol"] == "parse_retry_after"


def _stand_in(request: pytest.FixtureRequest) -> Path | None:
    """The stand-in models package where no default model is shipped (built with torch, so only then)."""
    if (SHIPPED / "manifest.json").is_file():
        return None
    package: Path = request.getfixturevalue("stand_in_models_package")
    return package


def test_search_with_torch_and_transformers_unimportable(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    root = make_repo(tmp_path / "repo")
    env = {**os.environ, "CODESEARCH_CACHE_DIR": str(tmp_path / "empty-cache")}
    stand_in = _stand_in(request)
    if stand_in is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(stand_in.parent), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER, "search", "parse the retry header", "--path", str(root), "--json"],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    _check_hits(proc.stdout)
    assert "attempted: []" in proc.stderr
    exported = tmp_path / "empty-cache" / "models"
    assert not exported.exists() or not any(exported.iterdir())  # nothing was exported


@pytest.mark.slow
def test_search_in_a_fresh_venv_without_torch(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """pip install . (no extras) into a new venv from the package index, then search there.

    Kept lean for CI: pip's cache (filled by scripts/setup.sh) supplies the wheels, hnswlib's built one
    included, and no bytecode is compiled; about a minute on a busy 2-core machine."""
    stand_in = _stand_in(request)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only what the venv holds
    env["CODESEARCH_CACHE_DIR"] = str(tmp_path / "cache")
    source = source_copy(tmp_path / "src")
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", str(source)],
                          capture_output=True, text=True, env=env, timeout=1800, check=False)
    if proc.returncode != 0 and any(s in proc.stderr for s in ("NewConnectionError", "Temporary failure in name")):
        pytest.skip(f"the package index is unreachable: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, proc.stderr
    for module in ("torch", "transformers"):
        probe = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, text=True, env=env,
                               check=False)
        assert probe.returncode != 0, f"{module} was installed without the train/export extras"
    installed = Path(subprocess.run([str(python), "-c", "import codesearch_models; print(codesearch_models.DEFAULT)"],
                                    capture_output=True, text=True, env=env, check=True).stdout.strip())
    assert installed.parent.parent != REPO / "models"  # a copy in the venv, not this checkout
    if stand_in is not None:
        shutil.copytree(stand_in / "default", installed)
    root = make_repo(tmp_path / "repo")
    proc = subprocess.run([str(env_dir / "bin" / "codesearch"), "search", "parse the retry header", "--path",
                           str(root), "--json"], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    _check_hits(proc.stdout)
