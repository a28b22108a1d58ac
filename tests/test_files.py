from __future__ import annotations

import collections
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import codesearch.walk.walker as files_mod
import pytest
from codesearch.walk.walker import (
    IgnoreRules,
    Skipped,
    SourceFile,
    WalkOptions,
    decode_text,
    inspect_file,
    read_text,
    walk,
)


def make(root: Path, spec: Mapping[str, str | bytes]) -> None:
    for rel, content in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def indexed(root: Path, options: WalkOptions | None = None) -> list[str]:
    return [f.path for f in walk(root, options).files]


def skipped(root: Path, options: WalkOptions | None = None) -> dict[str, str]:
    return {s.path: s.reason for s in walk(root, options).skipped}


def test_basic_walk(tmp_path: Path) -> None:
    make(tmp_path, {"b.py": "x = 1\n", "a/z.go": "package a\n", "a/b/c.rs": "fn f() {}\n", "README.md": "# hi\n"})
    result = walk(tmp_path)
    assert [f.path for f in result.files] == ["README.md", "a/b/c.rs", "a/z.go", "b.py"]
    first = result.files[1]
    assert first == SourceFile("a/b/c.rs", tmp_path / "a/b/c.rs", 10, first.mtime_ns, "rust")
    assert first.mtime_ns == (tmp_path / "a/b/c.rs").stat().st_mtime_ns
    assert result.skipped == []


def test_nested_gitignore_negation_directories_and_anchors(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "*_local.py\n!keep_local.py\nsecret/\n/anchored.py\nbuild_out/\n!build_out/keep.py\n"
                      "foo/*\n!foo/bar\n# a comment\n\n",
        "a_local.py": "", "keep_local.py": "", "secret.py": "", "secret/x.py": "", "sub/secret/y.py": "",
        "anchored.py": "", "sub/anchored.py": "", "local_only.py": "",
        "build_out/keep.py": "", "foo/baz.py": "", "foo/bar/x.py": "",
        "sub/.gitignore": "/local_only.py\n!b_local.py\ngen/\n",
        "sub/local_only.py": "", "sub/b_local.py": "", "sub/c_local.py": "", "sub/gen/z.py": "",
        "sub/deeper/local_only.py": "",
    })
    assert indexed(tmp_path) == [
        "foo/bar/x.py", "keep_local.py", "local_only.py", "secret.py", "sub/anchored.py", "sub/b_local.py",
        "sub/deeper/local_only.py",
    ]
    assert skipped(tmp_path) == {".gitignore": "unsupported", "sub/.gitignore": "unsupported"}


def test_info_exclude_and_git_folder(tmp_path: Path) -> None:
    make(tmp_path, {
        ".git/info/exclude": "excluded_by_info.py\nreincluded.py\n",
        ".git/config": "[core]\n", ".git/hooks/pre-commit.sh": "echo\n",
        "excluded_by_info.py": "", "kept.py": "", "reincluded.py": "", "sub/excluded_by_info.py": "",
        ".gitignore": "!reincluded.py\n",  # .gitignore outranks info/exclude, as in git
    })
    assert indexed(tmp_path) == ["kept.py", "reincluded.py"]


def test_codesearchignore_overrides_git_and_defaults(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "gen_*.py\n",
        ".codesearchignore": "fixtures/\n!gen_keep.py\n!vendor/\n",
        "gen_a.py": "", "gen_keep.py": "", "fixtures/f.py": "", "vendor/lib.py": "", "node_modules/m.js": "",
    })
    assert indexed(tmp_path) == ["gen_keep.py", "vendor/lib.py"]


def test_exclude_option_always_wins(tmp_path: Path) -> None:
    make(tmp_path, {
        ".codesearchignore": "!scripts/\n",
        "a.test.js": "", "a.js": "", "scripts/run.py": "", "src/scripts/other.py": "", "src/x.py": "",
    })
    options = WalkOptions(exclude=("*.test.js", "/scripts/"))
    assert indexed(tmp_path, options) == ["a.js", "src/scripts/other.py", "src/x.py"]


def test_default_skip_dirs_and_override(tmp_path: Path) -> None:
    make(tmp_path, {
        "node_modules/x.js": "", "web/node_modules/y.js": "", "dist/a.js": "", "__pycache__/m.py": "",
        ".venv/lib/site.py": "", "venv/lib/site.py": "", "target/debug/main.rs": "", "pkg.egg-info/top.txt": "",
        ".mypy_cache/c.json": "", "src/main.py": "", "build.sh": "echo\n",
    })
    assert indexed(tmp_path) == ["build.sh", "src/main.py"]
    everything = indexed(tmp_path, WalkOptions(skip_dirs=frozenset({"node_modules"})))
    assert "dist/a.js" in everything and "web/node_modules/y.js" not in everything
    assert "pkg.egg-info/top.txt" in everything


def test_binary_large_unsupported(tmp_path: Path) -> None:
    make(tmp_path, {
        "data.py": b"x = 1\n\x00\x01\x02",
        "image.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "big.py": "x = 1\n" * 50,
        "small.py": "x = 1\n",
        "LICENSE": "MIT License\n",
        "notes.xyz": "text\n",
    })
    assert skipped(tmp_path, WalkOptions(max_file_size=100)) == {
        "LICENSE": "unsupported", "big.py": "too-large", "data.py": "binary", "image.png": "unsupported",
        "notes.xyz": "unsupported",
    }
    assert indexed(tmp_path, WalkOptions(max_file_size=100)) == ["small.py"]


def test_extensionless_scripts_by_shebang(tmp_path: Path) -> None:
    make(tmp_path, {"bin/deploy": "#!/usr/bin/env bash\necho hi\n", "bin/tool": "#!/usr/bin/python3\nprint()\n"})
    assert [(f.path, f.language) for f in walk(tmp_path).files] == [("bin/deploy", "bash"), ("bin/tool", "python")]


def test_generated_and_minified(tmp_path: Path) -> None:
    minified = "var a=" + ",".join(f"b{i}=function(){{return {i}}}" for i in range(400)) + ";\n"
    long_lines = "".join(f"var x{i} = '{'y' * 400}';\n" for i in range(20))
    make(tmp_path, {
        "package-lock.json": "{}\n", "yarn.lock": "# yarn\n", "Cargo.lock": "[[package]]\n",
        "static/app.min.js": "x\n", "api/user.pb.go": "package api\n", "proto/user_pb2.py": "x = 1\n",
        "gen/models.go": "// Code generated by sqlc. DO NOT EDIT.\npackage gen\n",
        "bundle.js": minified, "wide.js": long_lines, "app.js": "function f() {\n  return 1;\n}\n",
        "style.css": "a { color: red; }\n",
    })
    assert skipped(tmp_path) == {
        "Cargo.lock": "generated", "api/user.pb.go": "generated", "bundle.js": "minified",
        "gen/models.go": "generated", "package-lock.json": "generated", "proto/user_pb2.py": "generated",
        "static/app.min.js": "generated", "wide.js": "minified", "yarn.lock": "generated",
    }
    assert indexed(tmp_path) == ["app.js", "style.css"]
    assert "package-lock.json" in indexed(tmp_path, WalkOptions(skip_generated=False))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    other = tmp_path / "outside"
    make(other, {"secret.py": "password = 1\n", "pkg/mod.py": "x = 1\n"})
    return other


def test_symlinks(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    make(root, {"src/real.py": "x = 1\n", "src/sub/deep.py": "y = 2\n", "ignored_dir/hidden.py": "z = 3\n",
                ".gitignore": "ignored_dir/\n/ignored_link.py\n"})
    (root / "escape.py").symlink_to(outside / "secret.py")
    (root / "escape_dir").symlink_to(outside / "pkg")
    (root / "alias.py").symlink_to(root / "src/real.py")
    (root / "src_link").symlink_to(root / "src")
    (root / "src/sub/loop").symlink_to(root / "src")
    (root / "self").symlink_to(root)
    (root / "dangling.py").symlink_to(root / "missing.py")
    (root / "ping.py").symlink_to(root / "pong.py")
    (root / "pong.py").symlink_to(root / "ping.py")
    (root / "ignored_link.py").symlink_to(outside / "secret.py")
    (root / "hidden_link").symlink_to(root / "ignored_dir")
    result = walk(root)
    assert [f.path for f in result.files] == ["hidden_link/hidden.py", "src/real.py", "src/sub/deep.py"]
    assert {s.path: s.reason for s in result.skipped if s.reason != "unsupported"} == {
        "dangling.py": "broken-symlink",
        "escape.py": "symlink-outside-root",
        "escape_dir": "symlink-outside-root",
        "ping.py": "broken-symlink",
        "pong.py": "broken-symlink",
    }


def test_symlinked_file_without_real_path_is_indexed(tmp_path: Path) -> None:
    make(tmp_path, {"docs/guide.md": "# Guide\n", ".codesearchignore": "docs/\n"})
    (tmp_path / "guide.md").symlink_to(tmp_path / "docs/guide.md")
    assert indexed(tmp_path) == ["guide.md"]


def test_root_given_through_a_symlink(tmp_path: Path) -> None:
    make(tmp_path / "real", {"a.py": "", "b/c.py": ""})
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert indexed(tmp_path / "link") == ["a.py", "b/c.py"]


def test_unreadable_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make(tmp_path, {"ok.py": "x\n", "locked.py": "y\n", "closed/inner.py": "z\n", "after/z.py": "w\n"})
    if os.geteuid() != 0:
        (tmp_path / "locked.py").chmod(0)
        (tmp_path / "closed").chmod(0)
    else:  # root reads anything: make the reads fail instead
        real_open, real_scandir = open, os.scandir

        def fake_open(path: Any, *args: Any, **kwargs: Any) -> Any:
            if str(path).endswith("locked.py"):
                raise PermissionError(13, "Permission denied")
            return real_open(path, *args, **kwargs)

        def fake_scandir(path: Any) -> Any:
            if str(path).endswith("closed"):
                raise PermissionError(13, "Permission denied")
            return real_scandir(path)

        monkeypatch.setattr(files_mod, "open", fake_open, raising=False)
        monkeypatch.setattr(os, "scandir", fake_scandir)
    try:
        result = walk(tmp_path)
    finally:
        (tmp_path / "locked.py").chmod(0o644)
        (tmp_path / "closed").chmod(0o755)
    assert [f.path for f in result.files] == ["after/z.py", "ok.py"]
    assert [(s.path, s.reason) for s in result.skipped] == [("closed", "unreadable"), ("locked.py", "unreadable")]
    assert "denied" in result.skipped[0].detail


def test_non_utf8_files_are_indexed_and_decoded(tmp_path: Path) -> None:
    make(tmp_path, {
        "latin.py": "# café crème\nname = 'Zoë'\n".encode("latin-1"),
        "mostly_utf8.py": "# naïve façade ünïcödé\nx = 1 # \xff\n".encode() .replace(b"\xc3\xbf", b"\xff"),
        "bom.py": b"\xef\xbb\xbfx = 1\n",
        "smart.py": "s = \u201cquoted\u201d\n".encode("cp1252"),
    })
    assert indexed(tmp_path) == ["bom.py", "latin.py", "mostly_utf8.py", "smart.py"]
    assert read_text(tmp_path / "latin.py") == "# café crème\nname = 'Zoë'\n"
    assert read_text(tmp_path / "mostly_utf8.py") == "# naïve façade ünïcödé\nx = 1 # \ufffd\n"
    assert read_text(tmp_path / "bom.py") == "x = 1\n"
    assert read_text(tmp_path / "smart.py") == "s = \u201cquoted\u201d\n"
    assert decode_text("über".encode("utf-16")) == "über"
    assert decode_text(b"") == ""


def test_ignore_rules_for_single_paths(tmp_path: Path) -> None:
    make(tmp_path, {
        ".gitignore": "*.log\nout/\n!important.log\n",
        "pkg/.gitignore": "!debug.log\nlocal/\n",
        ".codesearchignore": "docs/drafts/\n",
    })
    rules = IgnoreRules(tmp_path)
    assert rules.is_ignored("app.log")
    assert not rules.is_ignored("important.log")
    assert not rules.is_ignored("pkg/debug.log")
    assert rules.is_ignored("pkg/other.log")
    assert rules.is_ignored("out", is_dir=True)
    assert rules.is_ignored("out/x/y.py")
    assert not rules.is_ignored("src/out.py")
    assert rules.is_ignored("pkg/local/a.py")
    assert not rules.is_ignored("local/a.py")
    assert rules.is_ignored("docs/drafts/a.md")
    assert rules.is_ignored("node_modules/a/b.js")
    assert rules.is_ignored(".git/config")
    assert not rules.is_ignored("src/main.py")
    assert not rules.is_ignored("")
    (tmp_path / ".gitignore").write_text("*.py\n")
    assert not rules.is_ignored("src/main.py")  # cached until told otherwise
    rules.invalidate()
    assert rules.is_ignored("src/main.py")
    assert not rules.is_ignored("app.log")


def test_ignore_files_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {f"d{i}/sub/f{j}.py": "" for i in range(3) for j in range(5)}
    spec.update({f"d{i}/.gitignore": "*.tmp\n" for i in range(3)})
    make(tmp_path, spec)
    reads: collections.Counter[str] = collections.Counter()
    real = files_mod._read_spec

    def counting(path: str) -> Any:
        reads[Path(path).relative_to(tmp_path).as_posix()] += 1
        return real(path)

    monkeypatch.setattr(files_mod, "_read_spec", counting)
    rules = IgnoreRules(tmp_path)
    assert len(walk(tmp_path, rules=rules).files) == 15
    assert not rules.is_ignored("d1/sub/f1.py")
    assert reads and max(reads.values()) == 1


def test_inspect_file(tmp_path: Path, outside: Path) -> None:
    make(tmp_path / "root", {"a.py": "x = 1\n", "b.bin.py": b"\x00", ".gitignore": "ignored.py\n", "ignored.py": ""})
    root = tmp_path / "root"
    (root / "escape.py").symlink_to(outside / "secret.py")
    (root / "dangling.py").symlink_to(root / "nothing.py")
    found = inspect_file(root, "a.py")
    assert isinstance(found, SourceFile) and found.language == "python" and found.size == 6
    assert inspect_file(root, "b.bin.py") == Skipped("b.bin.py", "binary")
    assert inspect_file(root, "ignored.py") is None
    assert inspect_file(root, "missing.py") is None
    assert inspect_file(root, "node_modules/x.js") is None
    assert inspect_file(root, "escape.py") == Skipped("escape.py", "symlink-outside-root", str(outside / "secret.py"))
    assert inspect_file(root, "dangling.py") == Skipped("dangling.py", "broken-symlink")


def test_walk_is_deterministic_on_a_larger_tree(tmp_path: Path) -> None:
    spec: dict[str, str | bytes] = {f"p{i % 7}/q{i % 5}/f{i}.py": "x\n" for i in range(300)}
    spec[".gitignore"] = "p3/\n*7.py\n"
    make(tmp_path, spec)
    first = indexed(tmp_path)
    assert first == sorted(first) == indexed(tmp_path)
    assert len(first) == len([i for i in range(300) if i % 7 != 3 and not str(i).endswith("7")])
