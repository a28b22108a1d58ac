"""Stage two: source files cut into searchable chunks (tree-sitter definitions, line windows)."""
