from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable

import pytest
from codesearch.chunk.chunker import ChunkOptions, chunk_file
from codesearch.languages import GRAMMAR_LANGUAGES
from codesearch.types import Chunk, ChunkedFile

# One small realistic file per grammar language: a documented class with a method, and a function.

_SOURCES: dict[str, str] = {  # each starts with a newline, dropped below
    'python': r'''
import os

CONSTANT = 1


@dataclass
class Greeter:
    """Greets people."""

    greeting: str = "hi"

    # Say hello.
    def greet(self, name: str) -> str:
        return f"{self.greeting} {name}"


def main() -> None:
    """Entry point."""
    print(Greeter().greet("x"))


if __name__ == "__main__":
    main()
''',
    'javascript': r'''
import { join } from "path";

/**
 * Greets people.
 */
export class Greeter {
  constructor(greeting) {
    this.greeting = greeting;
  }

  // Say hello.
  greet(name) {
    return `${this.greeting} ${name}`;
  }
}

export function main() {
  console.log(new Greeter("hi").greet("x"));
}

const shout = (text) => {
  return text.toUpperCase();
};

main();
''',
    'typescript': r'''
import { join } from "path";

/** Something that greets. */
export interface Greeting {
  greet(name: string): string;
}

export class Greeter implements Greeting {
  private greeting = "hi";

  /** Say hello. */
  greet(name: string): string {
    return `${this.greeting} ${name}`;
  }
}

export function main(): void {
  console.log(new Greeter().greet("x"));
}
''',
    'tsx': r'''
import React from "react";

interface Props {
  name: string;
}

/** Shows a greeting. */
export function Hello({ name }: Props) {
  return <div className="hello">Hello {name}</div>;
}

export class Counter extends React.Component<Props> {
  render() {
    return <span>{this.props.name}</span>;
  }
}
''',
    'java': r'''
package com.example;

import java.util.List;

/**
 * Greets people.
 */
public class Greeter {
    private final String greeting = "hi";

    /** Say hello. */
    @Override
    public String greet(String name) {
        return greeting + " " + name;
    }

    public static void main(String[] args) {
        System.out.println(new Greeter().greet("x"));
    }
}
''',
    'go': r'''
package greet

import "fmt"

// Greeter greets people.
type Greeter struct {
	Greeting string
}

// Greet says hello.
func (g *Greeter) Greet(name string) string {
	return g.Greeting + " " + name
}

func Main() {
	fmt.Println((&Greeter{"hi"}).Greet("x"))
}
''',
    'rust': r'''
use std::fmt;

/// Greets people.
#[derive(Debug)]
pub struct Greeter {
    greeting: String,
}

impl Greeter {
    /// Say hello.
    pub fn greet(&self, name: &str) -> String {
        format!("{} {}", self.greeting, name)
    }
}

fn main() {
    println!("{}", Greeter { greeting: "hi".into() }.greet("x"));
}
''',
    'c': r'''
#include <stdio.h>

/* A greeter. */
struct greeter {
    const char *greeting;
};

// Say hello.
static void greet(const struct greeter *g, const char *name)
{
    printf("%s %s\n", g->greeting, name);
}

int main(void) {
    struct greeter g = {"hi"};
    greet(&g, "x");
    return 0;
}
''',
    'cpp': r'''
#include <string>

namespace demo {

/// Greets people.
class Greeter {
public:
    explicit Greeter(std::string greeting) : greeting_(greeting) {}

    // Say hello.
    std::string greet(const std::string &name) const {
        return greeting_ + " " + name;
    }

private:
    std::string greeting_;
};

int Greeter::count() { return 1; }

}  // namespace demo

int main() {
    return 0;
}
''',
    'csharp': r'''
using System;

namespace Demo
{
    /// <summary>Greets people.</summary>
    public class Greeter
    {
        private readonly string greeting = "hi";

        /// <summary>Say hello.</summary>
        public string Greet(string name)
        {
            return greeting + " " + name;
        }
    }
}
''',
    'ruby': r'''
require "json"

# Greets people.
class Greeter
  attr_reader :greeting

  # Say hello.
  def greet(name)
    "#{greeting} #{name}"
  end
end

def main
  puts Greeter.new.greet("x")
end
''',
    'php': r'''
<?php

namespace App;

/**
 * Greets people.
 */
class Greeter
{
    private string $greeting = "hi";

    /** Say hello. */
    public function greet(string $name): string
    {
        return $this->greeting . " " . $name;
    }
}

function main(): void
{
    echo (new Greeter())->greet("x");
}
''',
    'kotlin': r'''
package demo

import kotlin.math.max

/** Greets people. */
class Greeter(private val greeting: String) {
    val count = 0

    /** Say hello. */
    fun greet(name: String): String {
        return "$greeting $name"
    }
}

fun main() {
    println(Greeter("hi").greet("x"))
}
''',
    'swift': r'''
import Foundation

/// Greets people.
class Greeter {
    let greeting = "hi"

    /// Say hello.
    func greet(name: String) -> String {
        return "\(greeting) \(name)"
    }
}

func main() {
    print(Greeter().greet(name: "x"))
}
''',
    'scala': r'''
package demo

import scala.util.Try

/** Greets people. */
class Greeter(greeting: String) {
  val count = 0

  /** Say hello. */
  def greet(name: String): String = {
    s"$greeting $name"
  }
}

object Main {
  def main(args: Array[String]): Unit = println(new Greeter("hi").greet("x"))
}
''',
    'lua': r'''
local M = {}

-- Say hello.
function M.greet(name)
  return "hi " .. name
end

function M:shout(name)
  return self.greet(name):upper()
end

local function helper()
  return 1
end

return M
''',
    'bash': r'''
#!/usr/bin/env bash
set -euo pipefail

# Say hello.
greet() {
  echo "hi $1"
}

function main {
  greet "x"
}

main "$@"
''',
    'elixir': r'''
defmodule Demo.Greeter do
  @moduledoc "Greets people."

  @doc "Say hello."
  def greet(name) do
    "hi " <> name
  end

  defp helper(x), do: x
end
''',
    'haskell': r'''
module Greeter where

import Data.Char (toUpper)

-- | Something that greets.
class Greets a where
  greet :: a -> String -> String
  greet _ name = "hi " ++ name

-- | Say hello loudly.
shout :: String -> String
shout = map toUpper

data Greeter = Greeter String
''',
    'zig': r'''
const std = @import("std");

/// Greets people.
const Greeter = struct {
    greeting: []const u8,

    /// Say hello.
    pub fn greet(self: Greeter, name: []const u8) void {
        std.debug.print("{s} {s}\n", .{ self.greeting, name });
    }
};

pub fn main() void {
    (Greeter{ .greeting = "hi" }).greet("x");
}
''',
}
SNIPPETS = {language: source[1:] for language, source in _SOURCES.items()}

EXPECTED: dict[str, list[tuple[str, str, str, int, int]]] = {
    "python": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 6, 14),
        ("method", "Greeter", "greet", 12, 14),
        ("function", "", "main", 17, 19),
        ("module", "", "", 22, 23),
    ],
    "javascript": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeter", 3, 15),
        ("method", "Greeter", "constructor", 7, 9),
        ("method", "Greeter", "greet", 11, 14),
        ("function", "", "main", 17, 19),
        ("function", "", "shout", 21, 23),
        ("module", "", "", 25, 25),
    ],
    "typescript": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeting", 3, 6),
        ("class", "", "Greeter", 8, 15),
        ("method", "Greeter", "greet", 11, 14),
        ("function", "", "main", 17, 19),
    ],
    "tsx": [
        ("module", "", "", 1, 1),
        ("class", "", "Props", 3, 5),
        ("function", "", "Hello", 7, 10),
        ("class", "", "Counter", 12, 16),
        ("method", "Counter", "render", 13, 15),
    ],
    "java": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 5, 20),
        ("method", "Greeter", "greet", 11, 15),
        ("method", "Greeter", "main", 17, 19),
    ],
    "go": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 5, 8),
        ("method", "Greeter", "Greet", 10, 13),
        ("function", "", "Main", 15, 17),
    ],
    "rust": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeter", 3, 7),
        ("class", "", "Greeter", 9, 14),
        ("method", "Greeter", "greet", 10, 13),
        ("function", "", "main", 16, 18),
    ],
    "c": [
        ("module", "", "", 1, 1),
        ("class", "", "greeter", 3, 6),
        ("function", "", "greet", 8, 12),
        ("function", "", "main", 14, 18),
    ],
    "cpp": [
        ("module", "", "", 1, 3),
        ("class", "demo", "Greeter", 5, 17),
        ("method", "demo.Greeter", "Greeter", 8, 8),
        ("method", "demo.Greeter", "greet", 10, 13),
        ("method", "demo.Greeter", "count", 19, 19),
        ("module", "", "", 21, 21),
        ("function", "", "main", 23, 25),
    ],
    "csharp": [
        ("module", "", "", 1, 16),
        ("class", "Demo", "Greeter", 5, 15),
        ("method", "Demo.Greeter", "Greet", 10, 14),
    ],
    "ruby": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeter", 3, 11),
        ("method", "Greeter", "greet", 7, 10),
        ("function", "", "main", 13, 15),
    ],
    "php": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 5, 17),
        ("method", "Greeter", "greet", 12, 16),
        ("function", "", "main", 19, 22),
    ],
    "kotlin": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 5, 13),
        ("method", "Greeter", "greet", 9, 12),
        ("function", "", "main", 15, 17),
    ],
    "swift": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeter", 3, 11),
        ("method", "Greeter", "greet", 7, 10),
        ("function", "", "main", 13, 15),
    ],
    "scala": [
        ("module", "", "", 1, 3),
        ("class", "", "Greeter", 5, 13),
        ("method", "Greeter", "greet", 9, 12),
        ("class", "", "Main", 15, 17),
        ("method", "Main", "main", 16, 16),
    ],
    "lua": [
        ("module", "", "", 1, 1),
        ("function", "M", "greet", 3, 6),
        ("method", "M", "shout", 8, 10),
        ("function", "", "helper", 12, 14),
        ("module", "", "", 16, 16),
    ],
    "bash": [
        ("module", "", "", 1, 2),
        ("function", "", "greet", 4, 7),
        ("function", "", "main", 9, 11),
        ("module", "", "", 13, 13),
    ],
    "elixir": [
        ("class", "", "Demo.Greeter", 1, 10),
        ("function", "Demo.Greeter", "greet", 4, 7),
        ("function", "Demo.Greeter", "helper", 9, 9),
    ],
    "haskell": [
        ("module", "", "", 1, 3),
        ("class", "", "Greets", 5, 8),
        ("method", "Greets", "greet", 7, 8),
        ("function", "", "shout", 10, 12),
        ("class", "", "Greeter", 14, 14),
    ],
    "zig": [
        ("module", "", "", 1, 1),
        ("class", "", "Greeter", 3, 11),
        ("method", "Greeter", "greet", 7, 10),
        ("function", "", "main", 13, 15),
    ],
}

# The documented definition in each snippet, and a phrase of its doc comment.
DOCUMENTED: dict[str, tuple[str, str]] = {
    "python": ("greet", "# Say hello."),
    "javascript": ("greet", "// Say hello."),
    "typescript": ("greet", "/** Say hello. */"),
    "tsx": ("Hello", "/** Shows a greeting. */"),
    "java": ("greet", "/** Say hello. */"),
    "go": ("Greet", "// Greet says hello."),
    "rust": ("greet", "/// Say hello."),
    "c": ("greet", "// Say hello."),
    "cpp": ("greet", "// Say hello."),
    "csharp": ("Greet", "/// <summary>Say hello.</summary>"),
    "ruby": ("greet", "# Say hello."),
    "php": ("greet", "/** Say hello. */"),
    "kotlin": ("greet", "/** Say hello. */"),
    "swift": ("greet", "/// Say hello."),
    "scala": ("greet", "/** Say hello. */"),
    "lua": ("greet", "-- Say hello."),
    "bash": ("greet", "# Say hello."),
    "elixir": ("greet", '@doc "Say hello."'),
    "haskell": ("shout", "-- | Say hello loudly."),
    "zig": ("greet", "/// Say hello."),
}


def outline(result: ChunkedFile) -> list[tuple[str, str, str, int, int]]:
    return [(c.kind, c.container, c.symbol, c.start_line, c.end_line) for c in result.chunks]


def lines_of(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def assert_covered(text: str, chunks: tuple[Chunk, ...]) -> None:
    """Every non-blank line lies in some chunk's span, and spans stay inside the file."""
    lines = lines_of(text)
    if lines and lines[-1] == "":
        lines.pop()
    covered: set[int] = set()
    for chunk in chunks:
        assert 1 <= chunk.start_line <= chunk.end_line <= max(len(lines), 1), chunk
        covered.update(range(chunk.start_line, chunk.end_line + 1))
    missing = [n for n, line in enumerate(lines, 1) if line.strip() and n not in covered]
    assert not missing, f"uncovered lines {missing[:10]}"


def test_every_grammar_language_has_a_snippet() -> None:
    assert set(SNIPPETS) == set(GRAMMAR_LANGUAGES) == set(EXPECTED) == set(DOCUMENTED)


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_definitions_per_language(language: str) -> None:
    source = SNIPPETS[language]
    result = chunk_file(f"src/file.{language}", source, language)
    assert not result.parse_failed
    assert outline(result) == EXPECTED[language]
    assert all(c.language == language and c.path == f"src/file.{language}" for c in result.chunks)
    assert_covered(source, result.chunks)
    lines = source.split("\n")
    for chunk in result.chunks:
        if chunk.kind in ("function", "method"):  # a whole definition is its lines, verbatim
            assert chunk.text == "\n".join(lines[chunk.start_line - 1:chunk.end_line])
        assert chunk.part == 0


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_doc_comments_belong_to_their_definition(language: str) -> None:
    symbol, doc = DOCUMENTED[language]
    result = chunk_file("f", SNIPPETS[language], language)
    definition = next(c for c in result.chunks if c.symbol == symbol)
    assert definition.text.lstrip().startswith(doc)
    assert not any(doc in c.text for c in result.chunks if c.kind == "module")


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_class_chunks_show_methods_by_signature_only(language: str) -> None:
    result = chunk_file("f", SNIPPETS[language], language)
    lines = SNIPPETS[language].split("\n")
    checked = 0
    for owner in (c for c in result.chunks if c.kind == "class"):
        shown = owner.text.split("\n")
        for method in result.chunks:
            if method.kind == "class" or not owner.start_line < method.start_line <= method.end_line <= owner.end_line:
                continue
            code = lines[method.start_line - 1:method.end_line]
            header = next(i for i, line in enumerate(code) if method.symbol in line)
            body = [line for line in code[header + 1:] if line.strip() not in ("", "}", "};", "end")]
            if body and language != "haskell":  # there the attached type signature holds the name
                assert code[header] in shown
                assert not set(body) & set(shown), (owner.text, body)
                checked += 1
    assert checked or language in ("bash", "c", "go", "haskell", "lua")  # no methods inside classes there


def test_python_class_summary_text() -> None:
    result = chunk_file("f.py", SNIPPETS["python"], "python")
    greeter = next(c for c in result.chunks if c.kind == "class")
    assert greeter.text == (
        '@dataclass\nclass Greeter:\n    """Greets people."""\n\n    greeting: str = "hi"\n\n'
        "    def greet(self, name: str) -> str:\n        ..."
    )


def test_nested_functions_stay_inside_and_nested_classes_split_out() -> None:
    source = (
        "class Outer:\n"
        "    class Inner:\n"
        "        def deep(self):\n"
        "            return 1\n"
        "\n"
        "    def method(self):\n"
        "        def helper():\n"
        "            class Local:\n"
        "                pass\n"
        "            return Local\n"
        "        return helper()\n"
    )
    result = chunk_file("f.py", source, "python")
    assert outline(result) == [
        ("class", "", "Outer", 1, 11),
        ("class", "Outer", "Inner", 2, 4),
        ("method", "Outer.Inner", "deep", 3, 4),
        ("method", "Outer", "method", 6, 11),
    ]


def test_containers_from_qualified_names() -> None:
    go = "package p\n\nfunc (s Server[T]) Serve() {}\n"
    assert outline(chunk_file("f.go", go, "go"))[1] == ("method", "Server", "Serve", 3, 3)
    cpp = "namespace a {\nnamespace b {\nvoid Foo::Bar::run() {}\n}\n}\n"
    assert ("method", "a.b.Foo.Bar", "run", 3, 3) in outline(chunk_file("f.cpp", cpp, "cpp"))
    js = "Greeter.prototype.greet = function (name) {\n  return name;\n};\nexports.main = () => 1;\n"
    assert outline(chunk_file("f.js", js, "javascript")) == [
        ("method", "Greeter", "greet", 1, 3), ("function", "", "main", 4, 4),
    ]
    lua = "function a.b.c(x) end\nfunction a.b:d(x) end\n"
    assert outline(chunk_file("f.lua", lua, "lua")) == [("function", "a.b", "c", 1, 1), ("method", "a.b", "d", 2, 2)]
    rust = "impl<T: Clone> fmt::Display for Wrapper<T> {\n    fn fmt(&self) {}\n}\n"
    assert outline(chunk_file("f.rs", rust, "rust")) == [
        ("class", "", "Wrapper", 1, 3), ("method", "Wrapper", "fmt", 2, 2),
    ]


def test_multi_clause_functions_are_one_chunk() -> None:
    haskell = "fact :: Int -> Int\nfact 0 = 1\nfact n = n * fact (n - 1)\n\nother = 2\n"
    assert outline(chunk_file("f.hs", haskell, "haskell")) == [
        ("function", "", "fact", 1, 3), ("function", "", "other", 5, 5),
    ]
    elixir = "defmodule M do\n  def f(0), do: 1\n\n  def f(n), do: n\n  def g, do: 2\nend\n"
    assert outline(chunk_file("f.ex", elixir, "elixir")) == [
        ("class", "", "M", 1, 6), ("function", "M", "f", 2, 4), ("function", "M", "g", 5, 5),
    ]


def long_python_function(lines: int) -> str:
    body = "".join(
        f"    total += compute_value_{i}(alpha, beta)\n" + ("\n" if i % 9 == 8 else "") for i in range(lines)
    )
    return f"import os\n\n\n# Adds things up.\ndef accumulate(alpha, beta):\n    total = 0\n{body}    return total\n"


def test_long_definition_is_split_into_windows_with_its_signature() -> None:
    source = long_python_function(300)
    options = ChunkOptions()
    result = chunk_file("f.py", source, "python", options)
    parts = [c for c in result.chunks if c.symbol == "accumulate"]
    assert len(parts) > 3
    assert [p.part for p in parts] == list(range(1, len(parts) + 1))
    assert {(p.kind, p.container) for p in parts} == {("function", "")}
    assert parts[0].start_line == 4 and parts[0].text.startswith("# Adds things up.\ndef accumulate(alpha, beta):")
    assert parts[-1].end_line == len(source.splitlines())
    lines = source.split("\n")
    for previous, current in itertools.pairwise(parts):
        assert current.start_line <= previous.end_line + 1  # no gap
        assert current.start_line > previous.start_line
    for part in parts[1:]:
        assert part.text.startswith("def accumulate(alpha, beta):\n")
        window = part.text.split("\n", 1)[1]
        assert window == "\n".join(lines[part.start_line - 1:part.end_line])
    for part in parts:
        assert len(part.text) <= options.max_chars
        assert part.text.count("\n") < options.max_lines
    assert_covered(source, result.chunks)


def test_windows_overlap_and_signature_is_capped() -> None:
    params = "".join(f"    p{i},\n" for i in range(8))
    body = "".join(f"    x{i} = p{i % 8} * {i}\n" for i in range(200))
    source = f"def many(\n{params}):\n{body}"
    options = ChunkOptions(max_lines=40, max_chars=10_000, overlap_lines=5, max_signature_lines=3)
    parts = chunk_file("f.py", source, "python", options).chunks
    assert len(parts) > 5
    for previous, current in itertools.pairwise(parts):
        assert current.start_line == previous.end_line - 4  # five shared lines
        assert current.text.startswith("def many(\n    p0,\n    p1,\n    x")


def test_big_class_summary_is_windowed_with_its_header() -> None:
    fields = "".join(f"    field_{i}: int = {i}\n" for i in range(150))
    source = f"class Big(Base):\n{fields}\n    def method(self):\n        return 1\n"
    result = chunk_file("f.py", source, "python")
    parts = [c for c in result.chunks if c.symbol == "Big"]
    assert len(parts) > 1 and all(p.kind == "class" for p in parts)
    assert all(p.text.startswith("class Big(Base):\n") for p in parts)
    assert_covered(source, result.chunks)


def test_text_languages_use_line_windows() -> None:
    sections = [f"# Section {i}\n\n" + "".join(f"Sentence {i}.{j} about things.\n" for j in range(30)) + "\n"
                for i in range(10)]
    source = "".join(sections)
    result = chunk_file("README.md", source, "markdown", ChunkOptions(max_lines=50))
    assert not result.parse_failed
    assert all(c.kind == "window" and c.symbol == "" and c.container == "" for c in result.chunks)
    assert all(c.text.startswith("# Section") for c in result.chunks)  # cut before headings
    assert_covered(source, result.chunks)
    assert all(c.text.count("\n") < 50 for c in result.chunks)


def test_unknown_language_and_blank_line_splits() -> None:
    paragraphs = ["\n".join(f"SELECT {i}, {j} FROM t;" for j in range(12)) for i in range(20)]
    source = "\n\n".join(paragraphs) + "\n"
    result = chunk_file("q.sql", source, "sql", ChunkOptions(max_lines=30))
    assert all(c.kind == "window" for c in result.chunks)
    for chunk in result.chunks:
        assert chunk.text.split("\n")[0].endswith(", 0 FROM t;")  # windows start at a paragraph
    assert_covered(source, result.chunks)
    assert chunk_file("x.weird", "some text\n", "no-such-language").chunks[0].kind == "window"


def test_broken_code_falls_back_to_windows() -> None:
    garbage = "".join(f"def ((( {i} ]] }} class :: -> ==\n" for i in range(100))
    result = chunk_file("f.py", garbage, "python")
    assert result.parse_failed and result.error
    assert result.chunks and all(c.kind == "window" for c in result.chunks)
    assert_covered(garbage, result.chunks)


def test_a_small_syntax_error_keeps_the_tree() -> None:
    source = SNIPPETS["python"] + "\ndef broken(:\n    pass\n"
    result = chunk_file("f.py", source, "python")
    assert not result.parse_failed
    assert ("method", "Greeter", "greet", 12, 14) in outline(result)
    assert_covered(source, result.chunks)


@pytest.mark.parametrize("text", ["", "\n\n   \n\t\n"])
def test_empty_files(text: str) -> None:
    assert chunk_file("f.py", text, "python") == ChunkedFile(())


def test_only_comments() -> None:
    result = chunk_file("f.go", "// one\n// two\n", "go")
    assert outline(result) == [("module", "", "", 1, 2)]
    assert result.chunks[0].text == "// one\n// two"


def test_crlf_and_tabs() -> None:
    source = SNIPPETS["go"].replace("\n", "\r\n")
    result = chunk_file("f.go", source, "go")
    assert outline(result) == EXPECTED["go"]
    assert not any("\r" in c.text for c in result.chunks)
    assert "\tGreeting string" in result.chunks[1].text


def test_giant_single_line() -> None:
    source = "x = [" + ", ".join(str(i) for i in range(40_000)) + "]"
    options = ChunkOptions()
    result = chunk_file("f.py", source, "python", options)
    assert len(result.chunks) > 10
    assert all(c.start_line == c.end_line == 1 and len(c.text) <= options.max_chars for c in result.chunks)
    assert "".join(c.text for c in result.chunks) == source
    minified = "var a=1;" * 20_000
    assert all(len(c.text) <= options.max_chars for c in chunk_file("m.js", minified, "javascript").chunks)


def test_invalid_characters_never_raise() -> None:
    source = "def f():\n    return '\ufffd\udcff\x00'\n\udc80\n"
    result = chunk_file("f.py", source, "python")
    assert result.chunks
    for chunk in result.chunks:
        chunk.text.encode("utf-8")


def random_program(rng: random.Random, language: str) -> str:
    pieces = {
        "python": ["def f{n}(a):\n    return a\n", "class C{n}:\n    x = 1\n\n    def m(self):\n        pass\n",
                   "import os\n", "X{n} = 1\n", "# comment {n}\n", "@deco\ndef d{n}():\n    pass\n",
                   "if X:\n    print(1)\n", "\n", "\n\n", "    stray indent {n}\n", "def broken(:\n"],
        "javascript": ["function f{n}(a) {{\n  return a;\n}}\n", "class C{n} {{\n  m() {{ return 1; }}\n}}\n",
                       "const x{n} = () => 1;\n", "// note {n}\n", "foo({n});\n", "\n", "}}\n",
                       "export default {{ a: {n} }};\n", "/**\n * doc {n}\n */\n"],
        "go": ["func F{n}() {{}}\n", "type T{n} struct {{\n\tA int\n}}\n", "// doc {n}\n",
               "func (t *T{n}) M() int {{\n\treturn 1\n}}\n", "var v{n} = 1\n", "\n", "import \"fmt\"\n"],
        "rust": ["fn f{n}() {{}}\n", "/// doc {n}\nstruct S{n} {{ a: i32 }}\n",
                 "impl S{n} {{\n    fn m(&self) {{}}\n}}\n", "use std::io;\n", "#[test]\nfn t{n}() {{}}\n", "\n",
                 "mod m{n} {{\n    fn g() {{}}\n}}\n"],
        "cpp": ["int f{n}() {{ return 1; }}\n", "class C{n} {{\n public:\n  void m() {{}}\n}};\n",
                "#include <x>\n",
                "namespace n{n} {{\n", "}}\n", "// c {n}\n", "\n", "template <class T>\nT g{n}(T t) {{ return t; }}\n"],
    }[language]
    return "".join(rng.choice(pieces).format(n=n) for n in range(rng.randint(0, 40)))


@pytest.mark.parametrize("language", ["python", "javascript", "go", "rust", "cpp"])
def test_every_non_blank_line_is_covered_on_random_programs(language: str) -> None:
    rng = random.Random(f"cover-{language}")
    options = ChunkOptions(max_lines=12, max_chars=300, overlap_lines=2)
    for _ in range(60):
        source = random_program(rng, language)
        if rng.random() < 0.3:
            source = source.replace("\n", "\r\n")
        for opts in (options, ChunkOptions()):
            result = chunk_file("f", source, language, opts)
            assert_covered(source, result.chunks)


@pytest.mark.parametrize("language", sorted(GRAMMAR_LANGUAGES))
def test_random_text_never_raises_and_is_covered(language: str) -> None:
    rng = random.Random(f"noise-{language}")
    alphabet = "abc xyz(){}[];:.,'\"#/*-=\n\n\t\\@$<>|&" + "é中\ufffd"
    for _ in range(15):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))
        result = chunk_file("f", source, language, ChunkOptions(max_lines=10, max_chars=200))
        assert_covered(source, result.chunks)
    lines = SNIPPETS[language].split("\n")
    mixed = "\n".join(rng.sample(lines, len(lines)))
    assert_covered(mixed, chunk_file("f", mixed, language).chunks)


def test_speed_of_a_5000_line_file() -> None:
    block = SNIPPETS["python"].replace("import os\n", "").replace("Greeter", "Greeter{n}").replace("main", "main{n}")
    source = "".join(block.replace("{n}", str(n)) for n in range(230))
    assert source.count("\n") > 4500
    chunk_file("f.py", source, "python")
    best = min(timed(lambda: chunk_file("f.py", source, "python")) for _ in range(3))
    assert best < 0.5, best  # typically ~40 ms; the bound only catches blow-ups on a busy machine


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start
