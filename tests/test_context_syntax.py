from hypothesis import given
from hypothesis import strategies as st

from starchat_lsp.context import syntax
from starchat_lsp.context.syntax import CodeSpan

PYTHON = """\
import os
from typing import Any


@cache
def total(items, *, start=0):
    result = start
    for item in items:
        if item:
            result += item
    return result


class Cart:
    size = 0

    def add(self, item):
        self.size += 1
"""


def test_language_for_path_by_extension() -> None:
    expected = {
        "a/b.py": "python",
        "x.mjs": "javascript",
        "x.jsx": "javascript",
        "x.ts": "typescript",
        "x.tsx": "tsx",
        "x.h": "c",
        "x.hpp": "cpp",
        "x.cc": "cpp",
        "lib.rs": "rust",
        "main.go": "go",
        "A.java": "java",
        "index.HTML": "html",
        "q.sql": "sql",
        "C:\\src\\app.py": "python",
        "Makefile": None,
        "notes.txt": None,
    }
    assert {path: syntax.language_for_path(path) for path in expected} == expected


def test_parse_returns_none_without_a_grammar() -> None:
    assert syntax.parse("select 1;", "sql") is None
    tree = syntax.parse("x = 1\n", "python")
    assert tree is not None and tree.root_node.type == "module"


def test_enclosing_definition_includes_decorators() -> None:
    span = syntax.enclosing_definition(PYTHON, "python", 8)
    assert span == CodeSpan(4, 10, "function", "total")
    assert syntax.enclosing_definition(PYTHON, "python", 4) == span  # the decorator line


def test_enclosing_definition_prefers_methods_then_classes() -> None:
    assert syntax.enclosing_definition(PYTHON, "python", 17) == CodeSpan(16, 17, "method", "add")
    assert syntax.enclosing_definition(PYTHON, "python", 14) == CodeSpan(13, 17, "class", "Cart")
    assert syntax.enclosing_definition(PYTHON, "python", 0) is None
    assert syntax.enclosing_definition("select 1;", "sql", 0) is None


def test_enclosing_definition_in_other_languages() -> None:
    js = "class A {\n  m(p) {\n    return p\n  }\n}\nexport const g = () => {\n  return 1\n}\n"
    assert syntax.enclosing_definition(js, "javascript", 2) == CodeSpan(1, 3, "method", "m")
    assert syntax.enclosing_definition(js, "javascript", 6) == CodeSpan(5, 7, "function", "g")
    c = "struct S *p;\nstatic int\n*f(int a)\n{\n  return a;\n}\n"
    assert syntax.enclosing_definition(c, "c", 4) == CodeSpan(1, 5, "function", "f")
    assert syntax.enclosing_definition(c, "c", 0) is None  # a use of a struct, not a definition
    rust = "impl Foo {\n    fn g(&self) -> u8 {\n        1\n    }\n}\n"
    assert syntax.enclosing_definition(rust, "rust", 2) == CodeSpan(1, 3, "method", "g")
    assert syntax.enclosing_definition(rust, "rust", 0) == CodeSpan(0, 4, "impl", "Foo")
    go = "package p\n\nfunc (s *S) M() int {\n\treturn 1\n}\n"
    assert syntax.enclosing_definition(go, "go", 3) == CodeSpan(2, 4, "method", "M")
    java = "class A {\n  @Override\n  public int m() {\n    return 1;\n  }\n}\n"
    assert syntax.enclosing_definition(java, "java", 3) == CodeSpan(1, 4, "method", "m")


def test_definition_around_strictly_skips_the_exact_selection() -> None:
    assert syntax.definition_around(PYTHON, "python", 16, 17) == CodeSpan(16, 17, "method", "add")
    outer = syntax.definition_around(PYTHON, "python", 16, 17, strictly=True)
    assert outer == CodeSpan(13, 17, "class", "Cart")


def test_lines_count_rows_not_bytes_with_non_ascii_text() -> None:
    text = '# café 😀\nname = "é😀"\n\ndef f():\n    return "😀😀"\n'
    assert syntax.enclosing_definition(text, "python", 4) == CodeSpan(3, 4, "function", "f")
    js = 'import a from "./😀.js";\nimport { é } from "./é.js";\n'
    assert syntax.imports(js, "javascript") == [
        'import a from "./😀.js";',
        'import { é } from "./é.js";',
    ]


def test_expand_selection_inside_a_body_covers_whole_statements() -> None:
    # lines 7-8 start a `for` whose body goes on to line 9: take the whole `for`, stay in `total`
    assert syntax.expand_selection(PYTHON, "python", 7, 8) == (7, 9)
    assert syntax.expand_selection(PYTHON, "python", 6, 6) == (6, 6)
    assert syntax.expand_selection(PYTHON, "python", 8, 8) == (8, 9)  # an `if` header
    assert syntax.expand_selection(PYTHON, "python", 9, 9) == (9, 9)


def test_expand_selection_that_covers_a_def_line_takes_the_whole_def() -> None:
    assert syntax.expand_selection(PYTHON, "python", 5, 6) == (5, 10)
    assert syntax.expand_selection(PYTHON, "python", 16, 16) == (16, 17)
    assert syntax.expand_selection(PYTHON, "python", 4, 5) == (4, 10)  # decorator and def


def test_expand_selection_across_definitions_covers_each_whole() -> None:
    assert syntax.expand_selection(PYTHON, "python", 9, 15) == (4, 17)


def test_expand_selection_leaves_blank_lines_and_unknown_languages_alone() -> None:
    assert syntax.expand_selection(PYTHON, "python", 2, 3) == (2, 3)
    assert syntax.expand_selection("select 1;\nselect 2;\n", "sql", 1, 0) == (0, 1)


def test_expand_selection_in_braced_languages() -> None:
    js = "function f(a) {\n  if (a) {\n    a += 1;\n  }\n  return a;\n}\n"
    assert syntax.expand_selection(js, "javascript", 1, 2) == (1, 3)
    assert syntax.expand_selection(js, "javascript", 2, 4) == (1, 4)
    assert syntax.expand_selection(js, "javascript", 0, 0) == (0, 5)


@given(st.integers(0, 18), st.integers(0, 18))
def test_expand_selection_only_grows(start: int, end: int) -> None:
    low, high = min(start, end), max(start, end)
    new_start, new_end = syntax.expand_selection(PYTHON, "python", start, end)
    assert new_start <= low and high <= new_end
    assert new_end <= max(high, PYTHON.count("\n"))


def test_imports_per_language() -> None:
    assert syntax.imports(PYTHON, "python") == ["import os", "from typing import Any"]
    guarded = "try:\n    import ujson as json\nexcept ImportError:\n    import json\n"
    assert syntax.imports(guarded, "python") == ["import ujson as json", "import json"]
    c = '#include <stdio.h>\n#ifdef X\n#include "x.h"\n#endif\nint main(void) { return 0; }\n'
    assert syntax.imports(c, "c") == ["#include <stdio.h>", '#include "x.h"']
    assert syntax.imports("use std::io;\nfn main() {}\n", "rust") == ["use std::io;"]
    go = 'package main\n\nimport (\n\t"fmt"\n)\n'
    assert syntax.imports(go, "go") == ['import (\n\t"fmt"\n)']
    java = "import java.util.List;\nclass A {}\n"
    assert syntax.imports(java, "java") == ["import java.util.List;"]
    ts = "import { x } from './x';\nexport const y = x;\n"
    assert syntax.imports(ts, "typescript") == ["import { x } from './x';"]
    assert syntax.imports("select 1;", "sql") == []


def test_has_errors_finds_error_and_missing_nodes() -> None:
    assert syntax.has_errors("def f(:\n    pass\n", "python")
    assert syntax.has_errors("int f(void) { return 1 }\n", "c")  # a MISSING ';'
    assert not syntax.has_errors(PYTHON, "python")
    assert not syntax.has_errors("this is not sql at all (", "sql")


def test_function_signature_python() -> None:
    text = "def f(a, b: int, c=1, /, *args, d: int = 2, e, **kw):\n    pass\n"
    assert syntax.function_signature(text, "python", "f") == (
        "f",
        ["a", "b", "c", "*args", "d", "e", "**kw"],
    )
    assert syntax.function_signature(PYTHON, "python", "add") == ("add", ["self", "item"])
    assert syntax.function_signature(PYTHON, "python", "Cart") is None  # a class, not a function
    assert syntax.function_signature(PYTHON, "python", "missing") is None


def test_function_signature_other_languages() -> None:
    c = "static int *f(int a, char *b) { return 0; }\nint g(void) { return 0; }\n"
    assert syntax.function_signature(c, "c", "f") == ("f", ["a", "b"])
    assert syntax.function_signature(c, "c", "g") == ("g", [])
    js = "const g = (x, {y}, z = 1, ...rest) => x;\nconst h = v => v;\n"
    assert syntax.function_signature(js, "javascript", "g") == ("g", ["x", "{y}", "z", "...rest"])
    assert syntax.function_signature(js, "javascript", "h") == ("h", ["v"])
    go = "package p\nfunc (s *S) M(a, b int) {}\n"
    assert syntax.function_signature(go, "go", "M") == ("M", ["a", "b"])
    rust = "impl A { fn f(&self, a: i32) {} }\n"
    assert syntax.function_signature(rust, "rust", "f") == ("f", ["self", "a"])
    assert syntax.function_signature("select 1;", "sql", "f") is None
