from __future__ import annotations

import threading

import pytest
from codesearch.languages import (
    GRAMMAR_LANGUAGES,
    detect_language,
    get_parser,
    is_generated_name,
    language_for_path,
    language_from_shebang,
)


@pytest.mark.parametrize(
    ("path", "language"),
    [
        ("a/b/mod.py", "python"),
        ("stubs/x.pyi", "python"),
        ("web/app.jsx", "javascript"),
        ("web/app.mjs", "javascript"),
        ("web/app.ts", "typescript"),
        ("web/App.tsx", "tsx"),
        ("Main.java", "java"),
        ("main.go", "go"),
        ("lib.rs", "rust"),
        ("x.c", "c"),
        ("x.cpp", "cpp"),
        ("x.HPP", "cpp"),
        ("Program.cs", "csharp"),
        ("app.rb", "ruby"),
        ("index.php", "php"),
        ("Main.kt", "kotlin"),
        ("build.gradle.kts", "kotlin"),
        ("View.swift", "swift"),
        ("Main.scala", "scala"),
        ("init.lua", "lua"),
        ("run.sh", "bash"),
        ("lib/app.ex", "elixir"),
        ("test/app_test.exs", "elixir"),
        ("Main.hs", "haskell"),
        ("main.zig", "zig"),
        ("README.md", "markdown"),
        ("ci.yml", "yaml"),
        ("pyproject.toml", "toml"),
        ("package.json", "json"),
        ("schema.sql", "sql"),
        ("index.html", "html"),
        ("site.css", "css"),
        ("analysis.R", "r"),
        ("main.dart", "dart"),
        ("script.pl", "perl"),
        ("Makefile", "make"),
        ("GNUmakefile", "make"),
        ("Dockerfile", "dockerfile"),
        ("Dockerfile.dev", "dockerfile"),
        ("CMakeLists.txt", "cmake"),
        ("Gemfile", "ruby"),
        ("BUILD", "starlark"),
        (".bashrc", "bash"),
    ],
)
def test_language_for_path(path: str, language: str) -> None:
    assert language_for_path(path) == language
    assert detect_language(path) == language


@pytest.mark.parametrize("path", ["image.png", "archive.tar.gz", "noext", ".gitignore", "build"])
def test_unknown_names(path: str) -> None:
    assert language_for_path(path) is None


@pytest.mark.parametrize(
    ("first_line", "language"),
    [
        ("#!/usr/bin/env python3", "python"),
        ("#!/usr/bin/python3.11 -u", "python"),
        ("#!/bin/bash", "bash"),
        ("#!/bin/sh -e", "bash"),
        ("#!/usr/bin/env -S node --no-warnings", "javascript"),
        ("#!/usr/bin/env ruby", "ruby"),
        ("#!/usr/bin/perl -w", "perl"),
        ("#!/usr/bin/env elixir", "elixir"),
        ("#!/usr/bin/env unknown-thing", None),
        ("no shebang here", None),
        ("#!", None),
    ],
)
def test_shebang(first_line: str, language: str | None) -> None:
    head = f"{first_line}\nrest of file\n".encode()
    assert language_from_shebang(head) == language
    assert detect_language("bin/tool", head) == language


def test_name_beats_shebang() -> None:
    assert detect_language("tool.py", b"#!/bin/bash\n") == "python"


def test_header_c_or_cpp() -> None:
    assert detect_language("x.h", b"int add(int a, int b);\n") == "c"
    assert detect_language("x.h", b"#pragma once\nnamespace ns {\nclass Foo;\n}\n") == "cpp"
    assert detect_language("x.h", b"void f(std::string s);\n") == "cpp"


@pytest.mark.parametrize(
    "path",
    [
        "package-lock.json", "web/yarn.lock", "Cargo.lock", "poetry.lock", "pnpm-lock.yaml", "go.sum",
        "Gemfile.lock", "composer.lock", "static/app.min.js", "static/site.min.css", "static/app.js.map",
        "proto/user_pb2.py", "proto/user_pb2_grpc.py", "api/user.pb.go", "src/Foo.generated.cs",
        "lib/model.g.dart",
    ],
)
def test_generated_names(path: str) -> None:
    assert is_generated_name(path)


@pytest.mark.parametrize("path", ["src/app.js", "lock.py", "minimal.js", "generated.py", "proto/user.proto"])
def test_not_generated_names(path: str) -> None:
    assert not is_generated_name(path)


@pytest.mark.parametrize("language", sorted(GRAMMAR_LANGUAGES))
def test_every_grammar_loads(language: str) -> None:
    parser = get_parser(language)
    assert parser is not None
    tree = parser.parse(b"x\n")
    assert tree.root_node is not None
    assert get_parser(language) is parser


def test_grammar_count() -> None:
    assert len(GRAMMAR_LANGUAGES) == 20  # 19 grammar packages; typescript brings tsx too


@pytest.mark.parametrize("language", ["markdown", "yaml", "text", "nonsense"])
def test_no_parser_without_grammar(language: str) -> None:
    assert get_parser(language) is None


def test_parsers_are_per_thread() -> None:
    here = get_parser("python")
    there: list[object] = []
    thread = threading.Thread(target=lambda: there.append(get_parser("python")))
    thread.start()
    thread.join()
    assert there[0] is not None and there[0] is not here
