"""Definitions and their doc comments in one source file, read with tree-sitter (bench only).

The repository benchmark needs, for every definition, its name, its enclosing type, its line span
and the doc comment that describes it, so that it can turn the comment into a query and delete it
from the indexed copy. This is deliberately independent of the engine's chunker: the benchmark
must not measure the engine with the engine's own idea of where definitions are.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache

from tree_sitter import Language, Node, Parser

# language -> (grammar module, function returning the grammar)
GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "java": ("tree_sitter_java", "language"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "ruby": ("tree_sitter_ruby", "language"),
    "php": ("tree_sitter_php", "language_php"),
}

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx", ".java": "java",
    ".go": "go", ".rs": "rust", ".c": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp",
    ".hh": "cpp", ".hxx": "cpp", ".rb": "ruby", ".php": "php",
}

# Node type -> the word a person uses for it ("where is the X class implemented").
CLASS_WORDS: dict[str, str] = {
    "class_definition": "class", "class_declaration": "class", "abstract_class_declaration": "class",
    "interface_declaration": "interface", "enum_declaration": "enum", "record_declaration": "record",
    "struct_item": "struct", "enum_item": "enum", "trait_item": "trait", "union_item": "union",
    "class_specifier": "class", "struct_specifier": "struct", "class": "class", "module": "module",
    "trait_declaration": "trait", "type_spec": "type", "mod_item": "module",
}

_FUNCTIONS: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition"}),
    "javascript": frozenset({"function_declaration", "generator_function_declaration", "method_definition"}),
    "java": frozenset({"method_declaration", "constructor_declaration"}),
    "go": frozenset({"function_declaration", "method_declaration"}),
    "rust": frozenset({"function_item"}),
    "c": frozenset({"function_definition"}),
    "ruby": frozenset({"method", "singleton_method"}),
    "php": frozenset({"function_definition", "method_declaration"}),
}
_FUNCTIONS["typescript"] = _FUNCTIONS["tsx"] = _FUNCTIONS["javascript"]
_FUNCTIONS["cpp"] = _FUNCTIONS["c"]

_CLASSES: dict[str, frozenset[str]] = {
    "python": frozenset({"class_definition"}),
    "javascript": frozenset({"class_declaration"}),
    "typescript": frozenset({"class_declaration", "abstract_class_declaration", "interface_declaration",
                             "enum_declaration"}),
    "java": frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"}),
    "go": frozenset({"type_spec"}),
    "rust": frozenset({"struct_item", "enum_item", "trait_item", "union_item"}),
    "c": frozenset(),
    "cpp": frozenset({"class_specifier", "struct_specifier"}),
    "ruby": frozenset({"class", "module"}),
    "php": frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
}
_CLASSES["tsx"] = _CLASSES["typescript"]

# Nodes that wrap a definition: its doc comment sits before the wrapper.
_WRAPPERS = frozenset({"decorated_definition", "export_statement", "template_declaration",
                       "lexical_declaration", "variable_declaration", "expression_statement",
                       "type_declaration"})
# Scopes whose names become the container of what they hold (besides the classes above).
_SCOPES = frozenset({"impl_item", "trait_item"})
_COMMENTS = frozenset({"comment", "line_comment", "block_comment"})
# What may stand between a doc comment and its definition.
_BETWEEN = frozenset({"attribute_item", "decorator", "annotation", "marker_annotation"})
# Comment styles that count as documentation: "block" needs /** */; "line" takes any comments right above.
_DOC_STYLE: dict[str, str] = {
    "javascript": "block", "typescript": "block", "tsx": "block", "java": "block", "php": "block",
    "rust": "rust", "go": "line", "c": "line", "cpp": "line", "ruby": "line", "python": "docstring",
}

_LICENCE = re.compile(r"licen[cs]e|spdx|all rights reserved|copyright\s*(\(c\)|©|\d{4})", re.IGNORECASE)
_DIRECTIVE = re.compile(r"^\s*(//\s*(go:|\+build|nolint|NOLINT|eslint|istanbul|@ts-|prettier)|#\s*(frozen_string"
                        r"|rubocop|encoding|-\*-|!)|/\*\s*(eslint|istanbul|global))")


@dataclass(frozen=True)
class Comment:
    start: int  # 1-based, inclusive
    end: int
    text: str
    own_lines: bool  # nothing but the comment on its lines: it can be deleted as whole lines


@dataclass(frozen=True)
class Definition:
    path: str
    language: str
    kind: str  # function | method | class
    type_word: str  # class, struct, trait, interface, ... ("" for functions)
    name: str
    container: str  # enclosing type names joined with "."
    start: int  # first line, decorators/attributes/template header included
    name_line: int  # the line that holds the name
    end: int
    header_end: int  # for classes: the line before the first nested definition; else ``end``
    doc: Comment | None = None
    doc_removable: bool = False  # deleting the doc leaves a valid file
    nested: bool = False  # defined inside a function (a local helper, not a query target)

    @property
    def qualified(self) -> str:
        return f"{self.container}.{self.name}" if self.container else self.name

    @property
    def span(self) -> tuple[int, int]:
        """Lines that answer a question about this definition (a class: its header, not its methods)."""
        return self.start, self.header_end


@dataclass(frozen=True)
class FileFacts:
    path: str
    language: str
    header: Comment | None  # the file's own description (module docstring, package or header comment)
    definitions: tuple[Definition, ...] = field(default_factory=tuple)


@cache
def _parser(language: str) -> Parser:
    module, func = GRAMMARS[language]
    return Parser(Language(getattr(importlib.import_module(module), func)()))


def language_of(path: str, repo_language: str) -> str | None:
    """The grammar for ``path``; ``.h`` follows the repository (C or C++)."""
    suffix = path[path.rfind("."):].lower() if "." in path.rsplit("/", 1)[-1] else ""
    if suffix == ".h":
        return "cpp" if repo_language == "cpp" else "c"
    return EXTENSIONS.get(suffix)


def first_line(node: Node) -> int:
    return node.start_point.row + 1


def last_line(node: Node) -> int:
    """1-based last line; a node that ends at column 0 (a line comment with its newline) ends before."""
    row, col = node.end_point.row, node.end_point.column
    if col == 0 and row > node.start_point.row:
        row -= 1
    return row + 1


def _text(node: Node | None) -> str:
    return node.text.decode("utf-8", "replace") if node is not None and node.text is not None else ""


def _own_lines(node: Node, lines: list[str]) -> bool:
    """True when the node's first line starts with it and its last line ends with it."""
    before = lines[node.start_point.row][: node.start_point.column] if node.start_point.row < len(lines) else ""
    end_row = last_line(node) - 1
    after = ""
    if node.end_point.row == end_row and end_row < len(lines):
        after = lines[end_row][node.end_point.column:]
    return not before.strip() and not after.strip().rstrip(";")


def parse_file(path: str, text: str, language: str) -> FileFacts:
    source = text.encode("utf-8", "surrogatepass")
    tree = _parser(language).parse(source)
    lines = text.split("\n")
    walker = _Walker(path, language, lines)
    walker.visit(tree.root_node, (), False)
    header = _header(tree.root_node, language, lines, walker.doc_rows)
    return FileFacts(path, language, header, tuple(walker.found))


class _Walker:
    def __init__(self, path: str, language: str, lines: list[str]) -> None:
        self.path = path
        self.language = language
        self.lines = lines
        self.found: list[Definition] = []
        self.doc_rows: set[int] = set()  # 1-based lines of comments taken as definition docs

    def visit(self, node: Node, containers: tuple[str, ...], nested: bool) -> None:
        for child in node.named_children:
            definition = self._definition(child, containers, nested)
            inner, inner_nested = containers, nested
            if definition is not None:
                inner_nested = nested or definition.kind != "class"
                self.found.append(definition)
                if definition.doc:
                    self.doc_rows.update(range(definition.doc.start, definition.doc.end + 1))
                if definition.kind == "class":
                    inner = (*containers, definition.name)
            elif child.type in _SCOPES:
                scope = _scope_name(child)
                inner = (*containers, scope) if scope else containers
            self.visit(child, inner, inner_nested)

    def _definition(self, node: Node, containers: tuple[str, ...], nested: bool) -> Definition | None:
        kind, name, owner = _classify(node, self.language)
        if not kind or not name:
            return None
        outer = _outer(node)
        container = owner or ".".join(containers)
        if kind == "function" and (owner or containers):
            kind = "method"
        doc, removable = _doc_of(node, outer, self.language, self.lines)
        end = last_line(node)
        header_end = _header_end(node, end) if kind == "class" else end
        start = _attached_start(outer)
        return Definition(
            path=self.path, language=self.language, kind=kind, type_word=_type_word(node) if kind == "class" else "",
            name=name, container=container, start=start, name_line=first_line(node), end=end,
            header_end=max(header_end, start), doc=doc, doc_removable=removable, nested=nested)


def _classify(node: Node, language: str) -> tuple[str, str, str]:
    """(kind, name, explicit container) of a definition node, or ("", "", "") for anything else."""
    t = node.type
    if t in _FUNCTIONS[language]:
        name, owner = _function_name(node, language)
        if language == "cpp" and _macro_class(node) is not None:  # class EXPORT_MACRO Name { ... }
            return "class", name, ""
        return "function", name, owner
    if t in _CLASSES[language]:
        if language in ("c", "cpp") and node.child_by_field_name("body") is None:
            return "", "", ""
        if t == "type_spec" and not _is_go_struct_or_interface(node):
            return "", "", ""
        return "class", _last_part(_text(node.child_by_field_name("name"))), ""
    if language in ("javascript", "typescript", "tsx"):
        return _js_function_value(node)
    return "", "", ""


def _macro_class(node: Node) -> Node | None:
    """``class LEVELDB_EXPORT DB {`` parses as a function whose return type is the class."""
    kind = node.child_by_field_name("type")
    return kind if kind is not None and kind.type in ("class_specifier", "struct_specifier") else None


def _is_go_struct_or_interface(node: Node) -> bool:
    value = node.child_by_field_name("type")
    return value is not None and value.type in ("struct_type", "interface_type")


def _js_function_value(node: Node) -> tuple[str, str, str]:
    """``const f = () => {}`` and ``Foo.prototype.bar = function () {}``."""
    functions = ("arrow_function", "function_expression", "function")
    if node.type == "variable_declarator":
        value = node.child_by_field_name("value")
        if value is not None and value.type in functions:
            return "function", _text(node.child_by_field_name("name")), ""
    if node.type == "assignment_expression":
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if right is not None and right.type in functions and left is not None and left.type == "member_expression":
            parts = [p for p in _text(left).split(".") if p and p != "prototype"]
            if len(parts) >= 2 and parts[0] not in ("module", "exports", "this"):
                return "function", parts[-1], parts[-2]
            if len(parts) >= 2:
                return "function", parts[-1], ""
    return "", "", ""


def _function_name(node: Node, language: str) -> tuple[str, str]:
    if language in ("c", "cpp"):
        return _c_name(node.child_by_field_name("declarator"))
    if language == "go" and node.type == "method_declaration":
        receiver = _text(node.child_by_field_name("receiver"))
        match = re.search(r"\*?\s*([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*\)\s*$", receiver)
        return _text(node.child_by_field_name("name")), match.group(1) if match else ""
    if language == "ruby" and node.type == "singleton_method":
        return _text(node.child_by_field_name("name")), ""
    return _text(node.child_by_field_name("name")), ""


def _c_name(declarator: Node | None) -> tuple[str, str]:
    """Walk pointer/reference/function declarators down to the name; ``A::b`` gives container ``A``."""
    while declarator is not None and declarator.type in (
            "function_declarator", "pointer_declarator", "reference_declarator", "parenthesized_declarator"):
        inner = declarator.child_by_field_name("declarator")
        if inner is None:
            inner = next((c for c in declarator.named_children if c.type.endswith("declarator")
                          or c.type in ("identifier", "qualified_identifier", "field_identifier")), None)
        declarator = inner
    text = _text(declarator)
    if not text or declarator is None:
        return "", ""
    if declarator.type in ("identifier", "field_identifier"):
        return text, ""
    if declarator.type == "qualified_identifier":
        parts = _strip_templates(text).split("::")
        return parts[-1], parts[-2] if len(parts) > 1 else ""
    return "", ""  # operators, destructors and the like are no useful query targets


def _strip_templates(text: str) -> str:
    """``convert<std::array<T, N>>::encode`` -> ``convert::encode``."""
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"<[^<>]*>", "", text)
    return text


def _scope_name(node: Node) -> str:
    if node.type == "impl_item":
        return _last_part(_strip_templates(_text(node.child_by_field_name("type"))))
    return _last_part(_text(node.child_by_field_name("name")))


def _last_part(text: str) -> str:
    return re.split(r"::|\.", text.strip())[-1] if text else ""


def _type_word(node: Node) -> str:
    macro = _macro_class(node) if node.type == "function_definition" else None
    if macro is not None:
        return CLASS_WORDS[macro.type]
    if node.type == "type_spec":
        value = node.child_by_field_name("type")
        return "struct" if value is not None and value.type == "struct_type" else "interface"
    return CLASS_WORDS.get(node.type, "class")


def _outer(node: Node) -> Node:
    outer = node
    parent = node.parent
    if parent is not None and (node.type in ("variable_declarator", "assignment_expression")
                               or (node.type == "type_spec" and len(parent.named_children) == 1)):
        outer = parent
    while outer.parent is not None and outer.parent.type in _WRAPPERS and outer.parent.type != "type_declaration":
        outer = outer.parent
    return outer


def _attached_start(outer: Node) -> int:
    """The first line of the attributes or annotations right above a definition (Rust's ``#[...]``)."""
    top = first_line(outer)
    prev = outer.prev_named_sibling
    while prev is not None and prev.type in _BETWEEN and last_line(prev) >= top - 1:
        top = first_line(prev)
        prev = prev.prev_named_sibling
    return top


def _header_end(node: Node, end: int) -> int:
    """A class is answered by its header: the lines before its first nested definition."""
    body = node.child_by_field_name("body")
    if body is None:
        return end
    for child in _body_items(body):
        if child.type in _NESTED_DEFS:
            return first_line(_outer(child)) - 1
    return end


_NESTED_DEFS = frozenset().union(*_FUNCTIONS.values(), *_CLASSES.values(), {"decorated_definition"})


def _body_items(body: Node) -> Iterator[Node]:
    for child in body.named_children:
        if child.type in _WRAPPERS and child.type != "expression_statement":
            yield from child.named_children
        yield child


def _doc_of(node: Node, outer: Node, language: str, lines: list[str]) -> tuple[Comment | None, bool]:
    style = _DOC_STYLE[language]
    if style == "docstring":
        return _docstring(node, lines)
    comments = _comments_above(outer, lines)
    if not comments:
        return None, False
    if style == "block":
        last = comments[-1]
        if not _text(last).startswith("/**"):
            return None, False
        comments = [last]
    elif style == "rust":
        comments = _rust_doc(comments)
    comment = _merge(comments, lines)
    if comment is None or _is_noise(comment.text):
        return None, False
    return comment, comment.own_lines


def _comments_above(outer: Node, lines: list[str]) -> list[Node]:
    """The run of comments right above ``outer`` (attributes and annotations may stand between)."""
    found: list[Node] = []
    top = first_line(outer)
    prev = outer.prev_named_sibling
    if prev is None and outer.parent is not None and outer.parent.type == "body_statement":
        prev = outer.parent.prev_named_sibling  # Ruby: comments before a module's first class
    while prev is not None and prev.type in _BETWEEN:
        top = first_line(prev)
        prev = prev.prev_named_sibling
    gap = 2  # one blank line may separate the doc from its definition, none inside the doc
    while prev is not None and prev.type in _COMMENTS and last_line(prev) >= top - gap:
        if _DIRECTIVE.match(_text(prev)):
            break
        gap = 1
        found.insert(0, prev)
        top = first_line(prev)
        prev = prev.prev_named_sibling
    return found


def _rust_doc(comments: list[Node]) -> list[Node]:
    run: list[Node] = []
    for node in reversed(comments):
        text = _text(node)
        if (text.startswith("///") and not text.startswith("////")) or text.startswith("/**"):
            run.insert(0, node)
        else:
            break
    return run


def _merge(nodes: list[Node], lines: list[str]) -> Comment | None:
    if not nodes:
        return None
    start, end = first_line(nodes[0]), last_line(nodes[-1])
    text = "\n".join(_text(n).rstrip("\n") for n in nodes)
    return Comment(start, end, text, all(_own_lines(n, lines) for n in nodes))


def _docstring(node: Node, lines: list[str]) -> tuple[Comment | None, bool]:
    body = node.child_by_field_name("body")
    if body is None:
        return None, False
    statements = [c for c in body.named_children if c.type != "comment"]
    if not statements or statements[0].type != "expression_statement":
        return None, False
    first = statements[0]
    if not first.named_children or first.named_children[0].type != "string":
        return None, False
    comment = Comment(first_line(first), last_line(first), _text(first), _own_lines(first, lines))
    return comment, comment.own_lines and len(statements) > 1


def _is_noise(text: str) -> bool:
    return bool(_LICENCE.search(text)) or "@inheritdoc" in text.lower()


def _header(root: Node, language: str, lines: list[str], doc_rows: set[int]) -> Comment | None:
    """The file's own description: a module docstring, a package comment, or the first comment block
    before any definition that is neither a licence nor the doc of a definition."""
    if language == "python":
        first = next((c for c in root.named_children if c.type != "comment"), None)
        if first is not None and first.type == "expression_statement" and first.named_children \
                and first.named_children[0].type == "string":
            return Comment(first_line(first), last_line(first), _text(first), _own_lines(first, lines))
        return None
    groups = _leading_comment_groups(root, lines)
    for group in groups:
        comment = _merge(group, lines)
        if comment is None or doc_rows.intersection(range(comment.start, comment.end + 1)):
            continue
        if _is_noise(comment.text) or _DIRECTIVE.match(comment.text):
            continue
        if language == "rust" and not comment.text.startswith("//!"):
            continue
        return comment
    return None


def _leading_comment_groups(root: Node, lines: list[str]) -> list[list[Node]]:
    """Runs of adjacent comments among the top-level nodes before the first non-comment code
    (include guards, includes, package/namespace/use lines and the PHP tag are looked through)."""
    groups: list[list[Node]] = []
    for node in _top_nodes(root):
        if node.type in _COMMENTS:
            if not _EMPTY_COMMENT.match(_text(node)):  # a bare "//" line separates a licence from the rest
                joins = bool(groups and groups[-1]) and last_line(groups[-1][-1]) >= first_line(node) - 1 \
                    and not _text(groups[-1][-1]).startswith("/*")
                if joins:
                    groups[-1].append(node)
                else:
                    groups.append([node])
            else:
                groups.append([])
        elif not _is_preamble(node):
            break
    return [g for g in groups if g]


_EMPTY_COMMENT = re.compile(r"^\s*(//+|#+|--)\s*$")
_PREAMBLE = frozenset({"preproc_include", "preproc_def", "preproc_call", "php_tag", "package_clause",
                       "package_declaration", "import_declaration", "import_statement", "use_declaration",
                       "namespace_use_declaration", "text", "attribute_item",
                       "inner_attribute_item"})


def _is_preamble(node: Node) -> bool:
    """Lines a file starts with before its code: includes, imports, 'use strict', require."""
    if node.type in _PREAMBLE:
        return True
    if node.type == "expression_statement":  # 'use strict'
        return len(node.named_children) == 1 and node.named_children[0].type == "string"
    return node.type == "call" and _text(node.child_by_field_name("method")) in ("require", "require_relative")


def _top_nodes(root: Node) -> Iterator[Node]:
    for node in root.named_children:
        if node.type in ("preproc_ifdef", "preproc_if"):  # an include guard holds the whole file
            yield from (c for c in node.named_children if c.type not in ("identifier",))
            return
        if node.type == "namespace_definition" and node.child_by_field_name("body") is None:
            continue  # PHP ``namespace X;``
        yield node
