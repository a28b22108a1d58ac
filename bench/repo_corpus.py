"""The corpus of the repository benchmark: pinned packages fetched with the registries' own clients.

Layout under the cache folder (default ``~/.cache/codesearch-bench/repos``)::

    _downloads/            the artifacts as the registries served them
    _apt/                  a private apt configuration for Debian source packages (deb-src)
    <name>/src/            the unpacked repository, untouched
    <name>/tree/           the indexed copy: ``src`` less the manifest's ``drop`` globs and less the
                           comments that became queries (mtimes kept, so the engine's embedding order,
                           newest files first, is the one the unpacked sources give)
    <name>/queries.jsonl   the queries, with targets in ``tree``'s line numbers
    <name>/info.json       what was built
    <name>/index/          the engine's index of ``tree`` (vectors of every model tried are kept)
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
from repo_defs import FileFacts, language_of, parse_file
from repo_queries import (
    Draft,
    Query,
    delete_lines,
    doc_drafts,
    file_drafts,
    finalize,
    ident_drafts,
    identifier_counts,
    removals,
)

MANIFEST = Path(__file__).resolve().parent / "repos.toml"
DEFAULT_CACHE = Path(os.environ.get("CODESEARCH_BENCH_REPOS", "~/.cache/codesearch-bench/repos")).expanduser()
MAX_PARSE_BYTES = 1 << 20
SYSTEM_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))


class BuildError(RuntimeError):
    pass


@dataclass(frozen=True)
class RepoPin:
    name: str
    registry: str  # pypi | npm | deb | deb-src
    package: str
    version: str
    language: str
    split: str  # dev | test
    licence: str
    subdir: str = ""  # the repository's folder inside the unpacked artifact
    drop: tuple[str, ...] = ()  # globs left out of the indexed copy (bundles duplicating the sources)


@dataclass(frozen=True)
class Manifest:
    seed: int
    repos: tuple[RepoPin, ...] = field(default_factory=tuple)


def load_manifest(path: Path = MANIFEST) -> Manifest:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    repos = tuple(RepoPin(**{**r, "drop": tuple(r.get("drop", ()))}) for r in data["repo"])
    names = [r.name for r in repos]
    if len(set(names)) != len(names):
        raise BuildError(f"{path}: repository names repeat")
    return Manifest(int(data["seed"]), repos)


# -- fetching -----------------------------------------------------------------------------------

def _run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    return proc


def fetch(pin: RepoPin, cache: Path) -> Path:
    """The artifact of ``pin`` in ``_downloads``, fetched once."""
    folder = cache / "_downloads" / pin.name
    folder.mkdir(parents=True, exist_ok=True)
    found = _artifact(folder, pin)
    if found is not None:
        return found
    if pin.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
              f"{pin.package}=={pin.version}", "-d", str(folder)], folder)
    elif pin.registry == "npm":
        _run(["npm", "pack", f"{pin.package}@{pin.version}", "--silent"], folder)
    elif pin.registry == "deb":
        _apt_download(pin, folder, cache)
    elif pin.registry == "deb-src":
        _apt_source(pin, folder, cache)
    else:
        raise BuildError(f"{pin.name}: unknown registry {pin.registry!r}")
    found = _artifact(folder, pin)
    if found is None:
        raise BuildError(f"{pin.name}: {pin.registry} gave no artifact for {pin.package} {pin.version}")
    return found


def _artifact(folder: Path, pin: RepoPin) -> Path | None:
    patterns = {"pypi": ("*.tar.gz", "*.zip"), "npm": ("*.tgz",), "deb": ("*.deb",),
                "deb-src": ("*.orig.tar.*",)}[pin.registry]
    for pattern in patterns:
        hits = sorted(folder.glob(pattern))
        if hits:
            return hits[0]
    return None


def _apt_options(cache: Path) -> list[str]:
    apt = cache / "_apt"
    return ["-o", "Dir::Etc::SourceList=/dev/null", "-o", f"Dir::Etc::SourceParts={apt / 'sources.list.d'}",
            "-o", f"Dir::State::Lists={apt / 'lists'}", "-o", f"Dir::Cache={apt / 'cache'}"]


def debian_sources(system: tuple[Path, ...] = SYSTEM_SOURCES) -> str:
    """The machine's own Debian archives (deb822 stanzas), each for binaries and sources."""
    stanzas: list[str] = []
    files = [p for p in system if p.is_file()]
    files += [p for d in system if d.is_dir() for p in sorted(d.glob("*.sources"))]
    for path in files:
        for stanza in path.read_text(encoding="utf-8").split("\n\n"):
            lines = [line for line in stanza.splitlines() if line.strip() and not line.lstrip().startswith("#")]
            if any(line.startswith("Types:") and "deb" in line.split() for line in lines) \
                    and any(line.startswith("Suites:") and "security" not in line for line in lines):
                stanzas.append("\n".join("Types: deb deb-src" if line.startswith("Types:") else line
                                         for line in lines))
    if not stanzas:
        raise BuildError("no Debian archive found in the machine's apt sources (deb822 .sources files)")
    return "\n\n".join(stanzas) + "\n"


def _apt_ready(cache: Path) -> None:
    """A private apt configuration (sources and binaries of the machine's archives), so that pins
    resolve the same way whatever the machine's own lists hold, and the machine's setup is left alone."""
    apt = cache / "_apt"
    if (apt / "ready").exists():
        return
    (apt / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list.d").mkdir(parents=True, exist_ok=True)
    (apt / "sources.list.d" / "bench.sources").write_text(debian_sources(), encoding="utf-8")
    _run(["apt-get", *_apt_options(cache), "update"], apt)
    (apt / "ready").write_text("", encoding="utf-8")


def _apt_download(pin: RepoPin, folder: Path, cache: Path) -> None:
    _apt_ready(cache)
    _run(["apt-get", *_apt_options(cache), "download", f"{pin.package}={pin.version}"], folder)


def _apt_source(pin: RepoPin, folder: Path, cache: Path) -> None:
    """``apt-get source --download-only``; only the upstream (orig) tarball is used, so a missing
    Debian patch tarball is no loss."""
    _apt_ready(cache)
    proc = _run(["apt-get", *_apt_options(cache), "source", "--download-only", f"{pin.package}={pin.version}"],
                folder, check=False)
    if _artifact(folder, pin) is None:
        raise BuildError(f"apt-get source {pin.package}={pin.version} failed: {proc.stderr.strip()[-1500:]}")


def assign_splits(repos: Sequence[tuple[str, str]], seed: int, test_share: float = 1 / 3,
                  keep_dev: frozenset[str] = frozenset()) -> dict[str, str]:
    """Split by repository: for languages with several repositories, one of them (by a seeded hash)
    goes to test, languages also taken in seeded order, until ``test_share`` of the repositories is
    reached; everything else is dev. So every test language also has dev repositories."""
    def order(key: str) -> str:
        return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()

    by_language: dict[str, list[str]] = defaultdict(list)
    for name, language in repos:
        by_language[language].append(name)
    split = {name: "dev" for name, _ in repos}
    budget = round(len(repos) * test_share)
    for language in sorted(by_language, key=order):
        names = sorted((n for n in by_language[language] if n not in keep_dev), key=order)
        if budget > 0 and len(by_language[language]) >= 2 and names:
            split[names[0]] = "test"
            budget -= 1
    return split


# -- unpacking and the indexed copy -------------------------------------------------------------

def unpack(pin: RepoPin, artifact: Path, target: Path) -> None:
    """Unpack into ``target`` with the artifact's single top folder (or ``pin.subdir``) as its root."""
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if artifact.suffix == ".deb":
        _run(["dpkg-deb", "-x", str(artifact), str(staging)], staging)
    elif artifact.suffix == ".zip":
        with zipfile.ZipFile(artifact) as archive:
            archive.extractall(staging)
    else:
        with tarfile.open(artifact) as archive:
            archive.extractall(staging, filter="data")
    root = staging / pin.subdir if pin.subdir else _single_top(staging)
    if not root.is_dir():
        raise BuildError(f"{pin.name}: {pin.subdir or 'the top folder'} is not in {artifact.name}")
    shutil.rmtree(target, ignore_errors=True)
    root.rename(target)
    shutil.rmtree(staging, ignore_errors=True)


def _single_top(folder: Path) -> Path:
    entries = list(folder.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else folder


def source_files(root: Path, drop: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative POSIX paths of the regular files under ``root``, less the ``drop`` globs."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if Path(dirpath, name).is_symlink() or dropped(rel, drop):
                continue
            yield rel


def dropped(rel: str, drop: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(rel, g) or fnmatch.fnmatchcase(rel, g.rstrip("/") + "/*") for g in drop)


def parse_sources(root: Path, files: list[str], language: str) -> tuple[list[FileFacts], dict[str, str]]:
    """FileFacts of every file with a grammar, and the text of every readable text file."""
    facts: list[FileFacts] = []
    texts: dict[str, str] = {}
    for rel in files:
        path = root / rel
        if path.stat().st_size > MAX_PARSE_BYTES:
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        texts[rel] = text
        grammar = language_of(rel, language)
        if grammar is not None:
            facts.append(parse_file(rel, text, grammar))
    return facts, texts


def make_drafts(pin: RepoPin, facts: list[FileFacts], texts: dict[str, str], seed: int) -> list[Draft]:
    def rng(kind: str) -> random.Random:
        return random.Random(f"{seed}/{pin.name}/{kind}")

    popularity = identifier_counts(texts.values())
    return [*doc_drafts(facts, rng("doc")), *ident_drafts(facts, pin.language, rng("ident")),
            *file_drafts(facts, popularity, rng("file"))]


def write_tree(src: Path, tree: Path, files: list[str], cuts: dict[str, list[tuple[int, int]]]) -> list[str]:
    """Copy ``files`` from ``src`` to ``tree`` with the ``cuts`` deleted; keep every file's mtime.
    Returns the files whose content differs from what ``tree`` held before (the index must re-read them)."""
    changed: list[str] = []
    wanted = set(files)
    if tree.exists():
        for rel in list(source_files(tree)):
            if rel not in wanted:
                (tree / rel).unlink()
                changed.append(rel)
    for rel in files:
        source, target = src / rel, tree / rel
        data = source.read_bytes()
        if rel in cuts:
            data = delete_lines(data.decode("utf-8"), cuts[rel]).encode("utf-8")
        if target.exists() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        stat = source.stat()
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        changed.append(rel)
    return changed


def save_queries(path: Path, queries: list[Query]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for q in queries:
            out.write(json.dumps(q.to_json(), ensure_ascii=False) + "\n")


def read_queries(path: Path) -> list[Query]:
    with path.open(encoding="utf-8") as f:
        return [Query.from_json(json.loads(line)) for line in f if line.strip()]


def prepare(pin: RepoPin, cache: Path, seed: int) -> tuple[list[Query], list[str], list[str]]:
    """Fetch, unpack and write the indexed copy of one repository.

    Returns (queries, every file of the copy, the files whose content changed since the last build)."""
    base = cache / pin.name
    src = base / "src"
    if not src.exists():
        unpack(pin, fetch(pin, cache), src)
    files = list(source_files(src, pin.drop))
    facts, texts = parse_sources(src, files, pin.language)
    drafts = make_drafts(pin, facts, texts, seed)
    cuts = removals(drafts)
    changed = write_tree(src, base / "tree", files, cuts)
    return finalize(drafts, pin.name, cuts), files, changed
