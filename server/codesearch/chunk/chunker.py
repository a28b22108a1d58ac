"""Splitting a source file into searchable chunks (pure: text in, chunks out).

With a tree-sitter grammar, every function, method and class-like definition becomes a chunk
(leading doc comments, decorators and attributes included); a class chunk keeps its header and
fields but shows its methods by signature only, since each method is a chunk of its own; code
between definitions becomes ``module`` chunks.  Definitions too big for the encoder are split into
overlapping windows that each repeat the signature.  Without a grammar, or when the parse is
mostly errors, the file is cut into line windows, preferably at blank lines.

Every non-blank line of a file lies inside the line span of at least one chunk.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tree_sitter import Node, Query, QueryCursor

from ..languages import get_language, get_parser
from ..types import Chunk, ChunkedFile


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    max_chars: int = 1500
    max_lines: int = 80
    overlap_lines: int = 5  # between consecutive windows of one definition
    max_signature_lines: int = 3  # repeated at the top of each window of a split definition
    max_error_fraction: float = 0.3  # of non-blank bytes the parser could not place, before giving up on it


# ---------------------------------------------------------------------------------------------
# What a definition is, per language.
#
# Queries capture a definition node as @class (class-like: its functions are methods), @module
# (a module whose functions stay functions, e.g. Elixir), @namespace (only lends its name to the
# container) or @function, with an optional @name.

_ROLES = ("class", "module", "namespace", "function")


@dataclass(frozen=True, slots=True)
class _Spec:
    query: str
    attach: frozenset[str]  # node types directly above a definition that belong to it
    wrappers: frozenset[str] = frozenset()  # parents that take the place of their only definition
    merge_clauses: bool = False  # consecutive same-name functions are one definition (Haskell, Elixir)


_JS_QUERY = """
(class_declaration) @class
[(function_declaration) (generator_function_declaration) (method_definition)] @function
(variable_declarator name: (identifier)
  value: [(arrow_function) (function_expression) (generator_function)]) @function
(assignment_expression left: (member_expression) @name
  right: [(arrow_function) (function_expression) (generator_function)]) @function
"""
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration",
                          "expression_statement"})
_TS_QUERY = _JS_QUERY + """
(public_field_definition name: (_) value: [(arrow_function) (function_expression)]) @function
[(abstract_class_declaration) (interface_declaration) (enum_declaration) (type_alias_declaration)] @class
[(internal_module) (module)] @namespace
"""
_C_QUERY = """
(function_definition) @function
[(struct_specifier name: (_) body: (_)) (union_specifier name: (_) body: (_))
 (enum_specifier name: (_) body: (_))] @class
(type_definition
  type: [(struct_specifier !name body: (_)) (union_specifier !name body: (_)) (enum_specifier !name body: (_))]
  declarator: (_) @name) @class
"""
_ELIXIR_MODULES = '"defmodule" "defprotocol" "defimpl"'
_ELIXIR_FUNCTIONS = ('"def" "defp" "defmacro" "defmacrop" "defguard" "defguardp" "defdelegate" "defn" "defnp"'
                     ' "test"')

_SPECS: dict[str, _Spec] = {
    "python": _Spec(
        "(class_definition) @class (function_definition) @function",
        frozenset({"comment"}),
        frozenset({"decorated_definition"}),
    ),
    "javascript": _Spec(
        _JS_QUERY + "(field_definition property: (_) value: [(arrow_function) (function_expression)]) @function",
        frozenset({"comment", "decorator"}),
        _JS_WRAPPERS,
    ),
    "typescript": _Spec(_TS_QUERY, frozenset({"comment", "decorator"}),
                        _JS_WRAPPERS | {"ambient_declaration"}),
    "tsx": _Spec(_TS_QUERY, frozenset({"comment", "decorator"}), _JS_WRAPPERS | {"ambient_declaration"}),
    "java": _Spec(
        """
        [(class_declaration) (interface_declaration) (enum_declaration) (record_declaration)
         (annotation_type_declaration)] @class
        (method_declaration body: (_)) @function
        [(constructor_declaration) (compact_constructor_declaration)] @function
        """,
        frozenset({"line_comment", "block_comment"}),
    ),
    "go": _Spec(
        "[(function_declaration) (method_declaration)] @function [(type_spec) (type_alias)] @class",
        frozenset({"comment"}),
        frozenset({"type_declaration"}),
    ),
    "rust": _Spec(
        """
        [(struct_item) (enum_item) (union_item) (trait_item) (impl_item)] @class
        [(function_item) (macro_definition)] @function
        (mod_item body: (_)) @namespace
        """,
        frozenset({"line_comment", "block_comment", "attribute_item"}),
    ),
    "c": _Spec(_C_QUERY, frozenset({"comment"}), frozenset({"type_definition", "declaration"})),
    "cpp": _Spec(
        _C_QUERY + "(class_specifier name: (_) body: (_)) @class (namespace_definition) @namespace",
        frozenset({"comment"}),
        frozenset({"template_declaration", "type_definition", "declaration", "field_declaration"}),
    ),
    "csharp": _Spec(
        """
        [(class_declaration) (struct_declaration) (interface_declaration) (enum_declaration)
         (record_declaration)] @class
        [(method_declaration body: (_)) (constructor_declaration body: (_)) (destructor_declaration body: (_))
         (operator_declaration body: (_)) (conversion_operator_declaration body: (_))] @function
        (namespace_declaration) @namespace
        """,
        frozenset({"comment"}),
    ),
    "ruby": _Spec(
        "[(class) (module)] @class (singleton_class) @namespace [(method) (singleton_method)] @function",
        frozenset({"comment"}),
    ),
    "php": _Spec(
        """
        [(class_declaration) (interface_declaration) (trait_declaration) (enum_declaration)] @class
        (method_declaration body: (_)) @function
        (function_definition) @function
        (namespace_definition body: (_)) @namespace
        """,
        frozenset({"comment"}),
    ),
    "kotlin": _Spec(
        """
        [(class_declaration) (object_declaration) (companion_object)] @class
        (function_declaration (function_body)) @function
        (secondary_constructor) @function
        """,
        frozenset({"line_comment", "block_comment"}),
    ),
    "swift": _Spec(
        """
        [(class_declaration) (protocol_declaration)] @class
        [(function_declaration) (init_declaration) (deinit_declaration)] @function
        """,
        frozenset({"comment", "multiline_comment"}),
    ),
    "scala": _Spec(
        """
        [(class_definition) (object_definition) (trait_definition) (enum_definition)] @class
        (function_definition) @function
        """,
        frozenset({"comment", "block_comment"}),
    ),
    "lua": _Spec(
        """
        (function_declaration) @function
        (assignment_statement (expression_list . (function_definition))) @function
        """,
        frozenset({"comment"}),
        frozenset({"variable_declaration"}),
    ),
    "bash": _Spec("(function_definition) @function", frozenset({"comment"})),
    "elixir": _Spec(
        f"""
        (call target: (identifier) @_keyword (#any-of? @_keyword {_ELIXIR_MODULES})) @module
        (call target: (identifier) @_keyword (#any-of? @_keyword {_ELIXIR_FUNCTIONS})) @function
        """,
        frozenset({"comment", "unary_operator"}),
        merge_clauses=True,
    ),
    "haskell": _Spec(
        """
        (declarations [(function) (bind)] @function)
        (class_declarations [(function) (bind)] @function)
        (instance_declarations [(function) (bind)] @function)
        [(data_type) (newtype) (type_synonym) (class) (instance) (type_family) (data_family)] @class
        """,
        frozenset({"comment", "haddock", "signature", "pragma"}),
        merge_clauses=True,
    ),
    "zig": _Spec(
        """
        [(function_declaration) (test_declaration)] @function
        (variable_declaration (identifier) @name
          [(struct_declaration) (enum_declaration) (union_declaration) (opaque_declaration)]) @class
        """,
        frozenset({"comment"}),
    ),
}

_BODY_TYPES = frozenset({
    "block", "class_body", "compound_statement", "declaration_list", "field_declaration_list",
    "function_body", "do_block", "template_body", "enum_class_body", "enum_body", "interface_body",
    "body_statement", "statement_block", "class_declarations", "instance_declarations", "protocol_body",
    "enum_member_declaration_list", "enum_variant_list", "constructor_body", "where",
})


@functools.cache
def _query(language: str) -> Query | None:
    spec = _SPECS.get(language)
    grammar = get_language(language)
    if spec is None or grammar is None:
        return None
    return Query(grammar, spec.query)


# ---------------------------------------------------------------------------------------------
# Names.


def _text(node: Node | None) -> str:
    if node is None or node.text is None:
        return ""
    return " ".join(node.text.decode("utf-8", "replace").split())


def _field_text(node: Node, name: str) -> str:
    return _text(node.child_by_field_name(name))


def _dotted(text: str, method_separator: str = "") -> tuple[str, tuple[str, ...], bool]:
    """``a.b.c`` → ``("c", ("a", "b"), False)``; with ``method_separator`` ``a:c`` marks a method."""
    if method_separator and method_separator in text:
        owner, _, name = text.rpartition(method_separator)
        return name, tuple(p for p in owner.split(".") if p), True
    *scope, name = text.split(".")
    return name, tuple(p for p in scope if p), False


def _strip_generics(text: str) -> str:
    return text.split("<", 1)[0].split("[", 1)[0].strip().lstrip("*&").strip()


def _go_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    name = _field_text(node, "name")
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return name, (), False
    for parameter in receiver.named_children:
        type_text = _field_text(parameter, "type")
        if type_text:
            return name, (_strip_generics(type_text),), True
    return name, (), False


def _c_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    queue = [node.child_by_field_name("declarator")]
    while queue:
        current = queue.pop(0)
        if current is None:
            continue
        if current.type == "function_declarator":
            target = _text(current.child_by_field_name("declarator"))
            *scope, name = [part for part in _strip_template_args(target).split("::")] or [""]
            return name, tuple(p for p in scope if p), bool(scope)
        queue.extend(current.named_children)
    return "", (), False


def _strip_template_args(text: str) -> str:
    out: list[str] = []
    depth = 0
    for char in text:
        if char == "<" and not text.startswith("operator"):
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif not depth:
            out.append(char)
    return "".join(out).strip()


def _rust_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    if node.type != "impl_item":
        return _field_text(node, "name"), (), False
    target = node.child_by_field_name("type")
    while target is not None and target.type in ("generic_type", "reference_type", "scoped_type_identifier"):
        target = target.child_by_field_name("name" if target.type == "scoped_type_identifier" else "type")
    return _text(target), (), False


def _lua_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    if node.type == "function_declaration":
        return _dotted(_field_text(node, "name"), ":")
    targets = node.named_children[0] if node.named_children else None
    first = targets.named_children[0] if targets is not None and targets.named_children else None
    return _dotted(_text(first), ":")


def _js_name(node: Node, name_node: Node | None) -> tuple[str, tuple[str, ...], bool]:
    if node.type == "assignment_expression" and name_node is not None:
        name, scope, _ = _dotted(_text(name_node))
        if "prototype" in scope:
            return name, scope[: scope.index("prototype")], True
        if scope and scope[0] in ("module", "exports", "this", "window", "globalThis"):
            return name, (), False
        return name, scope, False
    if node.type == "field_definition":
        return _field_text(node, "property"), (), False
    return _field_text(node, "name").strip("\"'`"), (), False


def _elixir_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    arguments = next((c for c in node.named_children if c.type == "arguments"), None)
    if arguments is None or not arguments.named_children:
        return "", (), False
    first = arguments.named_children[0]
    if first.type == "binary_operator":  # def name(args) when guard
        first = first.child_by_field_name("left") or first
    if first.type == "call":
        first = first.child_by_field_name("target") or first
    return _text(first).strip('"'), (), False


def _haskell_name(node: Node) -> tuple[str, tuple[str, ...], bool]:
    name = _field_text(node, "name")
    if node.type == "instance":
        patterns = _field_text(node, "patterns")
        name = f"{name} {patterns}".strip()
    if not name:
        name = _text(node).split(" ", 1)[0]
    return name, (), False


def _zig_name(node: Node, name_node: Node | None) -> tuple[str, tuple[str, ...], bool]:
    if node.type == "test_declaration":
        label = next((c for c in node.named_children if c.type in ("string", "identifier")), None)
        return _text(label).strip('"'), (), False
    return _text(name_node) if name_node is not None else _field_text(node, "name"), (), False


def _name(language: str, node: Node, name_node: Node | None) -> tuple[str, tuple[str, ...], bool]:
    """The definition's own name, extra container parts its name implies, and whether those make it a method."""
    if language == "go":
        return _go_name(node)
    if language in ("c", "cpp") and node.type == "function_definition":
        return _c_name(node)
    if language == "rust":
        return _rust_name(node)
    if language == "lua":
        return _lua_name(node)
    if language in ("javascript", "typescript", "tsx"):
        return _js_name(node, name_node)
    if language == "elixir":
        return _elixir_name(node)
    if language == "haskell":
        return _haskell_name(node)
    if language == "zig":
        return _zig_name(node, name_node)
    if name_node is not None:
        return _text(name_node), (), False
    if node.type == "init_declaration":
        return "init", (), False
    if node.type == "deinit_declaration":
        return "deinit", (), False
    if node.type == "companion_object":
        return _field_text(node, "name") or "Companion", (), False
    return _field_text(node, "name"), (), False


# ---------------------------------------------------------------------------------------------
# Finding definitions.


@dataclass(slots=True, eq=False)
class _Def:
    role: str
    node: Node  # the definition with its wrappers (decorators, export, template, ...)
    core: Node  # the definition node the query matched
    name: str
    scope: tuple[str, ...]
    scope_is_type: bool
    head: int  # 0-based row where the node starts
    end: int  # 0-based last row
    start: int = 0  # 0-based first row, leading comments included
    sig_start: int = 0
    sig_end: int = 0
    parent: _Def | None = None
    container: str = ""
    kind: str = ""
    children: list[_Def] = field(default_factory=list)


def _end_row(node: Node) -> int:
    row, column = node.end_point
    return row - 1 if column == 0 and row > node.start_point.row else row


def _find_body(node: Node) -> Node | None:
    body = node.child_by_field_name("body")
    if body is not None:
        return body
    for child in node.named_children:
        if child.type in _BODY_TYPES:
            return child
    value = node.child_by_field_name("value") or node.child_by_field_name("right")
    return value.child_by_field_name("body") if value is not None else None


def _expand(node: Node, wrappers: frozenset[str]) -> Node:
    while (parent := node.parent) is not None and parent.type in wrappers:
        if any(c.type == node.type and c.id != node.id for c in parent.named_children):
            break
        node = parent
    return node


class _Lines:
    """The file's lines (without line terminators) and cheap questions about them."""

    def __init__(self, text: str) -> None:
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        self.items = [line[:-1] if line.endswith("\r") else line for line in lines]
        self.blank = [not line.strip() for line in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def indent(self, row: int) -> int:
        line = self.items[row]
        return len(line) - len(line.lstrip())


def _attach_start(d: _Def, root: Node, lines: _Lines, attach: frozenset[str], floor: int) -> int:
    """The first row of the comments/attributes directly above a definition (rows above ``floor``)."""
    start = d.head
    sibling = d.node.prev_named_sibling
    while sibling is not None and sibling.type in attach and _end_row(sibling) >= start - 1:
        row, column = sibling.start_point
        if row <= floor or column != lines.indent(row):  # not a trailing comment of other code
            break
        start = min(start, sibling.start_point.row)
        sibling = sibling.prev_named_sibling
    while start - 1 > floor:
        row = start - 1
        if lines.blank[row] or (row == 0 and lines.items[0].startswith("#!")):
            break
        column = lines.indent(row)
        node: Node | None = root.named_descendant_for_point_range((row, column), (row, column))
        found = None
        while node is not None and _end_row(node) == row:
            if node.type in attach:
                found = node
                break
            node = node.parent
        if found is None or found.start_point.row <= floor:
            break
        start = found.start_point.row
    return start


def _signature_end(d: _Def, lines: _Lines) -> int:
    body = _find_body(d.core)
    if body is None:
        return d.sig_start
    row, column = body.start_point
    if row <= d.sig_start:
        return d.sig_start
    has_header_text = column > lines.indent(row) if row < len(lines) else False
    return min(d.end, row if has_header_text else row - 1)


def _collect(language: str, root: Node, lines: _Lines) -> list[_Def]:
    spec = _SPECS[language]
    query = _query(language)
    if query is None:
        return []
    found: dict[int, _Def] = {}
    last_row = len(lines) - 1
    for _, captures in QueryCursor(query).matches(root):
        role = next((r for r in _ROLES if r in captures), None)
        if role is None:
            continue
        core = captures[role][0]
        node = _expand(core, spec.wrappers)
        if node.id in found:
            continue
        names = captures.get("name")
        name, scope, scope_is_type = _name(language, core, names[0] if names else None)
        if not name and role != "namespace":
            continue
        head = min(node.start_point.row, last_row)
        found[node.id] = _Def(role, node, core, name, scope, scope_is_type, head,
                              max(head, min(_end_row(node), last_row)))
    defs = sorted(found.values(), key=lambda d: (d.node.start_byte, -d.node.end_byte))
    return _nest(defs, spec, root, lines)


def _nest(defs: list[_Def], spec: _Spec, root: Node, lines: _Lines) -> list[_Def]:
    """Link definitions to their parents; drop those inside functions; fill in rows, kinds, containers."""
    kept: list[_Def] = []
    stack: list[tuple[_Def, bool]] = []  # (definition, dropped)
    last_end: dict[int, int] = {}  # id(parent) -> last row of the previous kept sibling
    for d in defs:
        while stack and stack[-1][0].node.end_byte <= d.node.start_byte:
            stack.pop()
        parent, parent_dropped = stack[-1] if stack else (None, False)
        dropped = parent is not None and (parent_dropped or parent.role == "function")
        stack.append((d, dropped))
        if dropped:
            continue
        d.parent = parent
        floor = max(parent.head if parent else -1, last_end.get(id(parent), -1))
        d.start = _attach_start(d, root, lines, spec.attach, floor)
        d.sig_start = max(d.head, min(d.core.start_point.row, d.end))
        d.sig_end = _signature_end(d, lines)
        last_end[id(parent)] = d.end
        kept.append(d)
    if spec.merge_clauses:
        kept = _merge_clauses(kept, lines)
    for d in kept:
        parts: list[str] = []
        owner = None
        ancestor = d.parent
        if ancestor is not None:
            parts = [ancestor.container] if ancestor.container else []
            if ancestor.name:
                parts.append(ancestor.name)
        while ancestor is not None and owner is None:
            if ancestor.role in ("class", "module"):
                owner = ancestor
            ancestor = ancestor.parent
        d.container = ".".join([*parts, *d.scope])
        if d.role == "function":
            d.kind = "method" if d.scope_is_type or (owner is not None and owner.role == "class") else "function"
        else:
            d.kind = "class"
        if owner is not None and d.role != "namespace":
            owner.children.append(d)
    return kept


def _merge_clauses(defs: list[_Def], lines: _Lines) -> list[_Def]:
    merged: list[_Def] = []
    for d in defs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and d.role == "function" == previous.role
            and d.name == previous.name
            and d.parent is previous.parent
            and previous.end < d.start
            and all(lines.blank[row] for row in range(previous.end + 1, d.start))
        ):
            previous.end = d.end
            continue
        merged.append(d)
    return merged


# ---------------------------------------------------------------------------------------------
# Windows.

_Item = tuple[int, str]  # (0-based row, text)


def _split_long(items: Iterable[_Item], limit: int) -> list[_Item]:
    out: list[_Item] = []
    for row, text in items:
        if len(text) <= limit:
            out.append((row, text))
        else:
            out.extend((row, text[i:i + limit]) for i in range(0, len(text), limit))
    return out


def _windows(
    items: list[_Item],
    options: ChunkOptions,
    prefix: str = "",
    prefix_after_row: int = -1,
    always_overlap: bool = True,
    is_heading: Callable[[str], bool] | None = None,
) -> list[tuple[int, int, str]]:
    """Cut items into windows within the size limits: ``(first row, last row, text)`` each.

    A window ends at a blank line (or before a heading) in its second half when there is one;
    otherwise it is cut where it is full and the next one overlaps it.  ``prefix`` is put on
    top of every window starting after ``prefix_after_row``.
    """
    prefix_cost = len(prefix) + 1 if prefix else 0
    items = _split_long(items, max(80, options.max_chars - prefix_cost))
    max_lines = max(1, options.max_lines - (prefix.count("\n") + 1 if prefix else 0))
    windows: list[tuple[int, int, str]] = []
    count = len(items)
    i = 0
    while i < count:
        while i < count and not items[i][1].strip():
            i += 1
        if i >= count:
            break
        budget = options.max_chars - (prefix_cost if items[i][0] > prefix_after_row and prefix else 0)
        j = i
        size = 0
        while j < count and j - i < max_lines and (j == i or size + len(items[j][1]) + 1 <= budget):
            size += len(items[j][1]) + 1
            j += 1
        end, following = j, j
        if j < count:
            following = max(j - options.overlap_lines, i + 1)
            candidates = range(j - 1, i + (j - i) // 2, -1)
            heading = next((k for k in candidates if is_heading(items[k][1])), None) if is_heading else None
            blank = next((k for k in candidates if not items[k][1].strip()), None)
            if heading is not None:
                end, following = heading, heading
            elif blank is not None:
                end, following = blank, blank + 1
            if always_overlap and end != j:
                following = max(end - options.overlap_lines, i + 1)
        body = items[i:end]
        while body and not body[-1][1].strip():
            body.pop()
        text = "\n".join(t for _, t in body)
        if prefix and body[0][0] > prefix_after_row:
            text = f"{prefix}\n{text}"
        windows.append((body[0][0], body[-1][0], text))
        i = following
    return windows


def _is_markdown_heading(text: str) -> bool:
    return text.startswith("#")


def _window_chunks(path: str, language: str, lines: _Lines, options: ChunkOptions) -> tuple[Chunk, ...]:
    heading = _is_markdown_heading if language in ("markdown", "rst", "text") else None
    items = list(enumerate(lines.items))
    return tuple(
        Chunk(path, language, "window", "", "", start + 1, end + 1, text)
        for start, end, text in _windows(items, options, always_overlap=False, is_heading=heading)
    )


# ---------------------------------------------------------------------------------------------
# Chunks from definitions.


def _fits(items: list[_Item], options: ChunkOptions) -> bool:
    return len(items) <= options.max_lines and sum(len(t) + 1 for _, t in items) - 1 <= options.max_chars


def _definition_chunks(path: str, language: str, d: _Def, lines: _Lines, options: ChunkOptions) -> list[Chunk]:
    if d.kind == "class" and d.children:
        items = _class_summary(d, lines)
    else:
        items = [(row, lines.items[row]) for row in range(d.start, d.end + 1)]
    if _fits(items, options):
        text = "\n".join(t for _, t in items)
        return [Chunk(path, language, d.kind, d.name, d.container, d.start + 1, d.end + 1, text)]
    signature_rows = range(d.sig_start, min(d.sig_end, d.sig_start + options.max_signature_lines - 1) + 1)
    prefix = "\n".join(lines.items[row][:300] for row in signature_rows)
    return [
        Chunk(path, language, d.kind, d.name, d.container, start + 1, end + 1, text, part)
        for part, (start, end, text) in enumerate(_windows(items, options, prefix, d.sig_start), 1)
    ]


def _class_summary(d: _Def, lines: _Lines) -> list[_Item]:
    """The class's own lines, with each member definition cut down to its signature."""
    items: list[_Item] = []
    row = d.start
    for child in sorted(d.children, key=lambda c: c.start):
        items.extend((r, lines.items[r]) for r in range(row, child.start))
        shown_end = min(child.sig_end, child.head + 5)
        items.extend((r, lines.items[r]) for r in range(max(row, child.head), shown_end + 1))
        if child.end > shown_end:
            indent = lines.items[shown_end + 1][: lines.indent(shown_end + 1)] if shown_end + 1 < len(lines) else ""
            if len(indent) <= lines.indent(child.head):
                indent = lines.items[child.head][: lines.indent(child.head)] + "    "
            items.append((shown_end, indent + "..."))
        row = max(row, child.end + 1)
    items.extend((r, lines.items[r]) for r in range(row, d.end + 1))
    return items


def _gap_chunks(path: str, language: str, defs: list[_Def], lines: _Lines, options: ChunkOptions) -> list[Chunk]:
    """Module chunks for the lines no definition covers; runs without a word join a neighbour."""
    covered = bytearray(len(lines))
    for d in defs:
        if d.role != "namespace":
            covered[d.start:d.end + 1] = b"\x01" * (d.end + 1 - d.start)
    runs: list[list[int]] = []
    current: list[int] = []
    for row in range(len(lines)):
        if covered[row]:
            if current:
                runs.append(current)
                current = []
        elif current or not lines.blank[row]:
            current.append(row)
    if current:
        runs.append(current)
    runs = [run[: max(i for i, r in enumerate(run) if not lines.blank[r]) + 1] for run in runs]
    merged: list[list[int]] = []
    pending: list[int] = []
    for run in runs:
        if not any(any(ch.isalnum() for ch in lines.items[r]) for r in run):
            if merged:
                merged[-1].extend(run)
            else:
                pending.extend(run)
            continue
        merged.append(pending + run)
        pending = []
    if pending:
        merged.append(pending)
    chunks: list[Chunk] = []
    for run in merged:
        items = [(row, lines.items[row]) for row in run]
        if _fits(items, options):
            text = "\n".join(t for _, t in items)
            chunks.append(Chunk(path, language, "module", "", "", run[0] + 1, run[-1] + 1, text))
            continue
        chunks.extend(
            Chunk(path, language, "module", "", "", start + 1, end + 1, text)
            for start, end, text in _windows(items, options, always_overlap=False)
        )
    return chunks


def _error_fraction(root: Node, source: bytes) -> float:
    """The share of the file's non-blank bytes that the parser could not fit into any construct.

    Whole ERROR spans would overstate it: after a confusing preprocessor branch tree-sitter may
    wrap an entire file in one ERROR node whose children are perfectly good definitions.  So only
    tokens lying loose in an ERROR node (and single identifiers, numbers and the like) count.
    """
    bad = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error and node.child_count == 0:
            bad += node.end_byte - node.start_byte
            continue
        for child in node.children:
            if child.has_error:
                stack.append(child)
            elif node.is_error and (not child.is_named or (child.child_count == 0 and "comment" not in child.type)):
                bad += child.end_byte - child.start_byte
    solid = len(source) - sum(source.count(c) for c in (b" ", b"\t", b"\n", b"\r"))
    return bad / solid if solid > 0 else 0.0


def _tree_chunks(path: str, language: str, lines: _Lines, source: bytes, options: ChunkOptions) -> ChunkedFile | None:
    """Chunks from the syntax tree, or ``None`` when the tree is too broken to use."""
    parser = get_parser(language)
    if parser is None:
        return None
    root = parser.parse(source).root_node
    if root.has_error and _error_fraction(root, source) > options.max_error_fraction:
        return None
    defs = _collect(language, root, lines)
    chunks = [c for d in defs if d.role != "namespace" for c in _definition_chunks(path, language, d, lines, options)]
    chunks.extend(_gap_chunks(path, language, defs, lines, options))
    chunks.sort(key=lambda c: (c.start_line, -c.end_line, c.part))
    return ChunkedFile(tuple(chunks))


def chunk_file(path: str, text: str, language: str, options: ChunkOptions | None = None) -> ChunkedFile:
    """Cut one file's text into chunks; never raises (a failure falls back to line windows)."""
    options = options or ChunkOptions()
    try:
        source = text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, e.g. from a "surrogateescape" decode
        source = text.encode("utf-8", "replace")
        text = source.decode("utf-8")
    lines = _Lines(text)
    if all(lines.blank):
        return ChunkedFile(())
    if language not in _SPECS or get_language(language) is None or _is_minified(text, lines):
        return ChunkedFile(_window_chunks(path, language, lines, options))
    try:
        result = _tree_chunks(path, language, lines, source, options)
    except Exception as error:
        return ChunkedFile(_window_chunks(path, language, lines, options), True, f"{type(error).__name__}: {error}")
    if result is None:
        return ChunkedFile(_window_chunks(path, language, lines, options), True, "too many syntax errors")
    return result


def _is_minified(text: str, lines: _Lines) -> bool:
    """Minified code has no definitions worth finding and costs seconds to parse."""
    return len(text) > 50_000 and len(text) > 1000 * len(lines)
