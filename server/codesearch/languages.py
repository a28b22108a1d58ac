"""Which language a file is written in, and tree-sitter parsers for the languages with a grammar.

Languages are plain strings.  The ones in :data:`GRAMMAR_LANGUAGES` are parsed with tree-sitter;
every other language name (``markdown``, ``yaml``, ``sql``, ...) is still indexed, by line windows.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import re
import threading
from collections.abc import Iterable
from fnmatch import translate
from pathlib import PurePath

from tree_sitter import Language, Parser

# language -> (module, function returning the grammar pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "java": ("tree_sitter_java", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "csharp": ("tree_sitter_c_sharp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "kotlin": ("tree_sitter_kotlin", "language"),
    "swift": ("tree_sitter_swift", "language"),
    "scala": ("tree_sitter_scala", "language"),
    "lua": ("tree_sitter_lua", "language"),
    "bash": ("tree_sitter_bash", "language"),
    "elixir": ("tree_sitter_elixir", "language"),
    "haskell": ("tree_sitter_haskell", "language"),
    "zig": ("tree_sitter_zig", "language"),
}

GRAMMAR_LANGUAGES: frozenset[str] = frozenset(_GRAMMARS)

_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": (".py", ".pyi", ".pyw"),
    "javascript": (".js", ".mjs", ".cjs", ".jsx"),
    "typescript": (".ts", ".mts", ".cts"),
    "tsx": (".tsx",),
    "java": (".java",),
    "go": (".go",),
    "rust": (".rs",),
    "c": (".c",),
    "cpp": (".cc", ".cpp", ".cxx", ".c++", ".hpp", ".hh", ".hxx", ".h++", ".ipp", ".tpp", ".inl", ".ino",
            ".cu", ".cuh"),
    "csharp": (".cs", ".csx"),
    "ruby": (".rb", ".rake", ".gemspec", ".ru", ".podspec"),
    "php": (".php", ".phtml"),
    "kotlin": (".kt", ".kts"),
    "swift": (".swift",),
    "scala": (".scala", ".sc", ".sbt"),
    "lua": (".lua",),
    "bash": (".sh", ".bash", ".zsh", ".ksh"),
    "elixir": (".ex", ".exs"),
    "haskell": (".hs", ".hs-boot"),
    "zig": (".zig",),
    # Languages without a grammar here: indexed by line windows.
    "markdown": (".md", ".markdown", ".mdx"),
    "rst": (".rst",),
    "text": (".txt", ".adoc", ".asciidoc", ".org"),
    "yaml": (".yml", ".yaml"),
    "toml": (".toml",),
    "json": (".json", ".jsonc", ".json5"),
    "xml": (".xml", ".xsd", ".xsl", ".xslt", ".wsdl", ".csproj", ".vbproj", ".fsproj", ".props", ".targets",
            ".plist"),
    "html": (".html", ".htm", ".xhtml"),
    "css": (".css",),
    "scss": (".scss", ".sass"),
    "less": (".less",),
    "vue": (".vue",),
    "svelte": (".svelte",),
    "sql": (".sql",),
    "r": (".r",),
    "dart": (".dart",),
    "perl": (".pl", ".pm", ".t"),
    "objc": (".m", ".mm"),
    "graphql": (".graphql", ".gql"),
    "protobuf": (".proto",),
    "thrift": (".thrift",),
    "terraform": (".tf", ".tfvars", ".hcl"),
    "nix": (".nix",),
    "cmake": (".cmake",),
    "make": (".mk", ".mak"),
    "dockerfile": (".dockerfile",),
    "starlark": (".bzl", ".star", ".bazel"),
    "groovy": (".groovy", ".gradle"),
    "julia": (".jl",),
    "clojure": (".clj", ".cljs", ".cljc", ".edn"),
    "erlang": (".erl", ".hrl"),
    "ocaml": (".ml", ".mli"),
    "fsharp": (".fs", ".fsi", ".fsx"),
    "elm": (".elm",),
    "fortran": (".f", ".f90", ".f95", ".f03", ".for"),
    "powershell": (".ps1", ".psm1", ".psd1"),
    "batch": (".bat", ".cmd"),
    "vim": (".vim",),
    "solidity": (".sol",),
    "latex": (".tex", ".sty", ".cls"),
    "nim": (".nim",),
    "crystal": (".cr",),
    "d": (".d",),
    "vb": (".vb", ".bas"),
    "ini": (".ini", ".cfg", ".conf", ".properties", ".editorconfig"),
}

EXTENSION_LANGUAGES: dict[str, str] = {
    ext: language for language, exts in _EXTENSIONS.items() for ext in exts
}

_FILENAMES: dict[str, str] = {
    "makefile": "make",
    "gnumakefile": "make",
    "dockerfile": "dockerfile",
    "containerfile": "dockerfile",
    "cmakelists.txt": "cmake",
    "jenkinsfile": "groovy",
    "gemfile": "ruby",
    "rakefile": "ruby",
    "guardfile": "ruby",
    "podfile": "ruby",
    "vagrantfile": "ruby",
    "brewfile": "ruby",
    "fastfile": "ruby",
    "capfile": "ruby",
    "justfile": "make",
    "pkgbuild": "bash",
    "apkbuild": "bash",
    ".bashrc": "bash",
    ".bash_profile": "bash",
    ".bash_aliases": "bash",
    ".profile": "bash",
    ".zshrc": "bash",
    ".zprofile": "bash",
    ".envrc": "bash",
    "readme": "text",
    "changelog": "text",
    "contributing": "text",
    "authors": "text",
}

_SHEBANG_INTERPRETERS: dict[str, str] = {
    "python": "python",
    "pypy": "python",
    "node": "javascript",
    "nodejs": "javascript",
    "bun": "javascript",
    "deno": "typescript",
    "ts-node": "typescript",
    "tsx": "typescript",
    "sh": "bash",
    "bash": "bash",
    "dash": "bash",
    "zsh": "bash",
    "ksh": "bash",
    "ruby": "ruby",
    "perl": "perl",
    "php": "php",
    "lua": "lua",
    "luajit": "lua",
    "elixir": "elixir",
    "runhaskell": "haskell",
    "runghc": "haskell",
    "stack": "haskell",
    "rscript": "r",
    "kotlin": "kotlin",
    "scala": "scala",
    "swift": "swift",
    "groovy": "groovy",
    "julia": "julia",
    "pwsh": "powershell",
}

KNOWN_LANGUAGES: frozenset[str] = frozenset(_EXTENSIONS) | frozenset(_FILENAMES.values()) | \
    frozenset(_SHEBANG_INTERPRETERS.values())


class UnknownLanguage(ValueError):
    """A language filter names no language this index can hold; the message lists the known ones."""


def check_languages(names: Iterable[str]) -> tuple[str, ...]:
    """The names in lower case; an unknown one raises :class:`UnknownLanguage` (a filter that can
    match nothing would answer every search with nothing, silently)."""
    wanted = tuple(name.strip().lower() for name in names if name.strip())
    unknown = [name for name in wanted if name not in KNOWN_LANGUAGES]
    if unknown:
        hints = [f"{name!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(
            name, KNOWN_LANGUAGES, n=1, cutoff=0.6)) else repr(name) for name in unknown]
        raise UnknownLanguage(f"unknown language {', '.join(hints)}; known languages: "
                              f"{', '.join(sorted(KNOWN_LANGUAGES))}")
    return wanted


_CPP_HEADER_HINT = re.compile(
    rb"^\s*(?:class\s+\w|namespace\b|template\s*<|public:|private:|#include\s*<(?:string|vector|memory|map)>)"
    rb"|std::",
    re.MULTILINE,
)

_LOCK_FILES = frozenset({
    "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lock", "bun.lockb",
    "cargo.lock", "poetry.lock", "pipfile.lock", "pdm.lock", "uv.lock", "composer.lock", "gemfile.lock",
    "go.sum", "mix.lock", "flake.lock", "podfile.lock", "pubspec.lock", "packages.lock.json",
    "gradle.lockfile", "deno.lock", "cabal.project.freeze", "stack.yaml.lock", "paket.lock",
})

_GENERATED_GLOBS = (
    "*.min.js", "*.min.mjs", "*.min.cjs", "*.min.css", "*-min.js", "*.bundle.js", "*.map",
    "*_pb2.py", "*_pb2.pyi", "*_pb2_grpc.py", "*.pb.go", "*.pb.gw.go", "*.pb.cc", "*.pb.h", "*.pb.swift",
    "*_pb.js", "*_pb.d.ts", "*_grpc_pb.js", "*.generated.*", "*.g.dart", "*.freezed.dart", "*.g.cs",
    "*.designer.cs", "*.g.i.cs", "zz_generated*.go", "*_generated.go", "*.gen.go", "*.pyc",
)
_GENERATED_NAME = re.compile("|".join(translate(glob) for glob in _GENERATED_GLOBS))


def _name_and_suffix(path: str | PurePath) -> tuple[str, str]:
    text = str(path)
    name = text[max(text.rfind("/"), text.rfind("\\")) + 1:]
    dot = name.rfind(".")
    return name, name[dot:].lower() if dot > 0 else ""


def language_for_path(path: str | PurePath) -> str | None:
    """The language implied by a file's name alone; ``None`` when the name says nothing."""
    name, suffix = _name_and_suffix(path)
    if name in ("BUILD", "WORKSPACE"):
        return "starlark"
    lower = name.lower()
    if lower in _FILENAMES:
        return _FILENAMES[lower]
    if lower.startswith(("dockerfile.", "containerfile.")) or lower.endswith(".dockerfile"):
        return "dockerfile"
    if lower.startswith("makefile."):
        return "make"
    if suffix == ".h":
        return "c"
    return EXTENSION_LANGUAGES.get(suffix)


def language_from_shebang(head: bytes | str) -> str | None:
    """The language named by a ``#!`` first line (``#!/usr/bin/env python3`` → ``python``)."""
    if isinstance(head, str):
        head = head.encode("utf-8", "replace")
    if not head.startswith(b"#!"):
        return None
    first = head[2:].split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    words = first.split()
    if not words:
        return None
    program = words[0].rsplit("/", 1)[-1]
    if program == "env":
        rest = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        if not rest:
            return None
        program = rest[0].rsplit("/", 1)[-1]
    program = re.sub(r"[\d.]+$", "", program.lower())
    return _SHEBANG_INTERPRETERS.get(program)


def detect_language(path: str | PurePath, head: bytes | str | None = None) -> str | None:
    """The language of a file from its name and, if given, its first bytes.

    ``head`` settles what the name cannot: the shebang of an extensionless script, and whether a
    ``.h`` header is C or C++.  ``None`` means the file is not something we index.
    """
    language = language_for_path(path)
    if head is None:
        return language
    raw = head.encode("utf-8", "replace") if isinstance(head, str) else head
    if language is None:
        return language_from_shebang(raw)
    if language == "c" and _name_and_suffix(path)[1] == ".h" and _CPP_HEADER_HINT.search(raw):
        return "cpp"
    return language


def is_generated_name(path: str | PurePath) -> bool:
    """True for lock files, minified bundles, source maps and code generators' usual outputs."""
    name = _name_and_suffix(path)[0].lower()
    return name in _LOCK_FILES or _GENERATED_NAME.match(name) is not None


@functools.cache
def get_language(language: str) -> Language | None:
    """The tree-sitter grammar for ``language``, or ``None`` when there is none (or it fails to load)."""
    spec = _GRAMMARS.get(language)
    if spec is None:
        return None
    module_name, function_name = spec
    try:
        module = importlib.import_module(module_name)
        return Language(getattr(module, function_name)())
    except (ImportError, AttributeError, ValueError):
        return None


_local = threading.local()


def get_parser(language: str) -> Parser | None:
    """A parser for ``language`` (``None`` without a grammar).

    Parsers keep state between calls and are not thread-safe, so each thread gets its own.
    """
    parsers: dict[str, Parser] | None = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(language)
    if parser is None:
        grammar = get_language(language)
        if grammar is None:
            return None
        parser = parsers[language] = Parser(grammar)
    return parser
