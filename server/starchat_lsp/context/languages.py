"""What we know about each language: file extensions, grammars, and the node types we look for.

Ids are ours ("python", "cpp", "tsx"); they double as Markdown fence tags.
"""

from __future__ import annotations

EXTENSIONS = {
    "py": "python",
    "pyi": "python",
    "js": "javascript",
    "mjs": "javascript",
    "cjs": "javascript",
    "jsx": "javascript",
    "ts": "typescript",
    "mts": "typescript",
    "cts": "typescript",
    "tsx": "tsx",
    "c": "c",
    "h": "c",
    "cc": "cpp",
    "cpp": "cpp",
    "cxx": "cpp",
    "hpp": "cpp",
    "hh": "cpp",
    "rs": "rust",
    "go": "go",
    "java": "java",
    "html": "html",
    "htm": "html",
    "sql": "sql",
}

# language -> (grammar package, function returning the language pointer)
GRAMMARS = {
    "python": ("tree_sitter_python", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "go": ("tree_sitter_go", "language"),
    "java": ("tree_sitter_java", "language"),
    "html": ("tree_sitter_html", "language"),
}

JS_DEFINITIONS = {
    "function_declaration": "function",
    "generator_function_declaration": "function",
    "function_expression": "function",
    "generator_function": "function",
    "arrow_function": "function",
    "method_definition": "method",
    "class_declaration": "class",
    "class": "class",
}
TS_DEFINITIONS = {
    **JS_DEFINITIONS,
    "abstract_class_declaration": "class",
    "interface_declaration": "interface",
    "enum_declaration": "enum",
}
# Node type -> kind. "function" becomes "method" when the nearest enclosing definition is a type.
DEFINITIONS: dict[str, dict[str, str]] = {
    "python": {"function_definition": "function", "class_definition": "class"},
    "javascript": JS_DEFINITIONS,
    "typescript": TS_DEFINITIONS,
    "tsx": TS_DEFINITIONS,
    "c": {"function_definition": "function", "struct_specifier": "struct"},
    "cpp": {
        "function_definition": "function",
        "class_specifier": "class",
        "struct_specifier": "struct",
    },
    "rust": {
        "function_item": "function",
        "impl_item": "impl",
        "trait_item": "trait",
        "struct_item": "struct",
        "enum_item": "enum",
    },
    "go": {
        "function_declaration": "function",
        "method_declaration": "method",
        "func_literal": "function",
        "type_declaration": "type",
    },
    "java": {
        "method_declaration": "method",
        "constructor_declaration": "method",
        "class_declaration": "class",
        "interface_declaration": "interface",
        "enum_declaration": "enum",
        "record_declaration": "record",
    },
}
FUNCTION_KINDS = frozenset({"function", "method"})

# Nodes that only wrap a definition (decorators, `export`, `const f = () => ...`): a definition's
# span grows to cover them so the decorator or the name travels with the body.
WRAPPERS = frozenset(
    {
        "decorated_definition",
        "export_statement",
        "variable_declarator",
        "lexical_declaration",
        "variable_declaration",
        "template_declaration",
    }
)

IMPORTS: dict[str, frozenset[str]] = {
    "python": frozenset({"import_statement", "import_from_statement", "future_import_statement"}),
    "javascript": frozenset({"import_statement"}),
    "typescript": frozenset({"import_statement"}),
    "tsx": frozenset({"import_statement"}),
    "c": frozenset({"preproc_include"}),
    "cpp": frozenset({"preproc_include"}),
    "rust": frozenset({"use_declaration"}),
    "go": frozenset({"import_declaration"}),
    "java": frozenset({"import_declaration"}),
}
# Imports sit at the top level, but also under `#ifdef` or Python's `if TYPE_CHECKING:`/`try:`.
IMPORT_CONTAINERS = frozenset(
    {"if_statement", "try_statement", "block", "else_clause", "elif_clause", "except_clause"}
)

SPLATS = {"list_splat_pattern": "*", "dictionary_splat_pattern": "**", "rest_pattern": "..."}
IDENTIFIERS = frozenset(
    {"identifier", "field_identifier", "property_identifier", "type_identifier", "self"}
)

# How prompts name a language to the model; ids not listed are shown as they are.
DISPLAY_NAMES = {
    "python": "Python",
    "javascript": "JavaScript",
    "typescript": "TypeScript",
    "tsx": "TypeScript (TSX)",
    "c": "C",
    "cpp": "C++",
    "rust": "Rust",
    "go": "Go",
    "java": "Java",
    "html": "HTML",
    "sql": "SQL",
}

# Line comment markers for the few lines prompts write into code (file headers, placeholders).
LINE_COMMENTS = {"python": "#", "sql": "--"} | dict.fromkeys(
    ("javascript", "typescript", "tsx", "c", "cpp", "rust", "go", "java"), "//"
)

# Fence tags models write for our languages, beside our own ids.
FENCE_ALIASES = {
    "py": "python",
    "python3": "python",
    "js": "javascript",
    "jsx": "javascript",
    "node": "javascript",
    "ts": "typescript",
    "c++": "cpp",
    "cxx": "cpp",
    "rs": "rust",
    "golang": "go",
    "htm": "html",
}


def comment_line(language: str | None, text: str) -> str | None:
    """`text` as a one-line comment in the language; None when we don't know its comment syntax."""
    if language == "html":
        return f"<!-- {text} -->"
    marker = LINE_COMMENTS.get(language or "")
    return f"{marker} {text}" if marker else None


def normalize(tag: str | None) -> str | None:
    """Our id for a fence tag or language name (`py` -> `python`); None for an empty tag."""
    if not tag:
        return None
    tag = tag.strip().lower()
    return FENCE_ALIASES.get(tag, tag)
