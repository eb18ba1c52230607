"""Context from other files for completion: the definitions the cursor's code imports, found on
files written to a temporary workspace, and how prompts carry them to each kind of model."""

from __future__ import annotations

from pathlib import Path

import pytest

from starchat_lsp.context import other_files, outlines, prompts
from starchat_lsp.context.other_files import OtherFile
from starchat_lsp.engine import templates
from starchat_lsp.engine.base import CompletionPrompt, OtherFiles
from starchat_lsp.engine.worker import protocol

GEOMETRY = '''"""Shapes."""

UNIT = 1.0


def area(width, height):
    """The area of a rectangle."""
    return width * height


def perimeter(width, height):
    """The length around a rectangle.

    Both sides twice: a long explanation that the prompt can do without.
    """
    doubled = 2 * width
    doubled += 2 * height
    if doubled < 0:
        raise ValueError("negative sides")
    result = doubled
    assert result >= 0
    return result


class Square:
    """A square with a side."""

    kind = "square"

    def __init__(self, side):
        self.side = side

    def scaled(self, factor):
        return Square(self.side * factor)

    def _check(self):
        return self.side > 0

    def __repr__(self):
        return f"Square({self.side})"

    def describe(self):
        return f"a square of side {self.side}"
'''

UNITS = '''def scale(value, factor=2):
    """Scale a value."""
    return value * factor
'''


def words(text: str) -> int:
    """A stand-in tokenizer: one token per word."""
    return len(text.split())


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("from .geometry import area as surface\n")
    (tmp_path / "pkg" / "geometry.py").write_text(GEOMETRY)
    (tmp_path / "pkg" / "units.py").write_text(UNITS)
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("")
    return tmp_path


def gather(root: Path, path: str, text: str, at: str, budget: int = 1000) -> tuple[OtherFile, ...]:
    document = root / path
    return other_files.gather(text, str(document), root, text.index(at), words, budget)


APP = """from pkg.units import scale
from pkg.geometry import Square, area
import pkg.geometry as geo


def total(shapes):
    size = scale(3)
    result = geo.perimeter(size, size) + area(1, 2)
    return result + Square(size).side


def elsewhere():
    return geo.UNIT
"""


def test_the_imported_names_the_function_uses_come_in_first_use_order(workspace: Path) -> None:
    found = gather(workspace, "app.py", APP, "result =")
    assert [f.path for f in found] == ["pkg/units.py", "pkg/geometry.py"]
    units, geometry = found
    assert units.text == UNITS.strip()
    perimeter, area, square = geometry.text.split("\n\n")
    # long: the signature and the docstring's first paragraph; short: whole
    assert perimeter == (
        'def perimeter(width, height):\n    """The length around a rectangle.\n    """'
    )
    assert area == (
        'def area(width, height):\n    """The area of a rectangle."""\n    return width * height'
    )
    # a class: its header, docstring, fields and public methods, __init__ included
    assert square == (
        "class Square:\n"
        '    """A square with a side."""\n'
        '    kind = "square"\n'
        "    def __init__(self, side): ...\n"
        "    def scaled(self, factor): ...\n"
        "    def describe(self): ..."
    )
    # another function: only what it uses (a module constant)
    assert gather(workspace, "app.py", APP, "geo.UNIT") == (
        OtherFile("pkg/geometry.py", "UNIT = 1.0"),
    )


def test_relative_imports_and_re_exports_resolve(workspace: Path) -> None:
    text = (
        "from .. import units\n"
        "from ..geometry import area as rect\n"
        "from pkg import surface\n"
        "\n"
        "def f(x):\n"
        "    return units.scale(rect(x, x)) + surface(1, 1)\n"
    )
    found = gather(workspace, "pkg/sub/calc.py", text, "return")
    assert [f.path for f in found] == ["pkg/units.py", "pkg/geometry.py"]
    assert found[1].text.startswith("def area(width, height):")  # once, though named twice


def test_the_budget_is_kept_and_a_definition_too_big_is_left_out(workspace: Path) -> None:
    whole = gather(workspace, "app.py", APP, "result =")
    # each definition's words and 2, each file's path and 2
    cost = sum(words(f.text) + 2 * f.text.count("\n\n") + 2 + words(f.path) + 2 for f in whole)
    assert gather(workspace, "app.py", APP, "result =", budget=cost) == whole
    units_only = words(UNITS) + 2 + 1 + 2
    smaller = gather(workspace, "app.py", APP, "result =", budget=units_only + 10)
    assert [f.path for f in smaller] == ["pkg/units.py"]
    assert gather(workspace, "app.py", APP, "result =", budget=0) == ()


def test_the_same_text_while_the_cursor_stays_in_the_function(workspace: Path) -> None:
    first = gather(workspace, "app.py", APP, "size = scale")
    assert first == gather(workspace, "app.py", APP, "result =")
    typed = APP.replace("    return result", "    result += 1\n    return result")
    assert gather(workspace, "app.py", typed, "result += 1") == first


def test_a_name_defined_here_is_not_looked_up(workspace: Path) -> None:
    text = (
        "from pkg.geometry import area, perimeter\n"
        "from pkg.units import scale\n"
        "\n"
        "def area(w, h):\n"
        "    return 0\n"
        "\n"
        "def f(scale):\n"
        "    perimeter = 3\n"
        "    return area(1, 2) + scale + perimeter\n"
    )
    assert gather(workspace, "app.py", text, "return area") == ()


def test_unreadable_huge_outside_and_unknown_files_are_skipped(
    workspace: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "secret.py"
    outside.write_text("def leak():\n    return 'secret'\n")
    (workspace / "linked.py").symlink_to(outside)
    (workspace / "huge.py").write_text("def big():\n    return 1\n" + "# padding\n" * 1000)
    (workspace / "locked.py").write_text("def closed():\n    return 1\n")
    monkeypatch.setattr(outlines, "MAX_FILE_BYTES", 5000)
    real_read = Path.read_bytes

    def read_bytes(path: Path) -> bytes:
        if path.name == "locked.py":
            raise PermissionError(13, "Permission denied")
        return real_read(path)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    text = (
        "import os\n"
        "from linked import leak\n"
        "from huge import big\n"
        "from locked import closed\n"
        "from missing import gone\n"
        "from pkg.units import scale\n"
        "\n"
        "def f():\n"
        "    return leak() + big() + closed() + gone() + os.getcwd() + scale(1)\n"
    )
    found = gather(workspace, "app.py", text, "return")
    assert found == (OtherFile("pkg/units.py", UNITS.strip()),)
    assert gather(workspace, "notes.txt", text, "return") == ()  # no Python


def test_a_changed_file_is_read_again(workspace: Path) -> None:
    before = gather(workspace, "app.py", APP, "size = scale")[0].text
    (workspace / "pkg" / "units.py").write_text(UNITS.replace("factor=2", "factor=3") + "\n")
    after = gather(workspace, "app.py", APP, "size = scale")[0].text
    assert "factor=2" in before and "factor=3" in after


def test_module_level_code_uses_the_lines_around_the_cursor(workspace: Path) -> None:
    text = "from pkg.units import scale\n\nvalue = scale(2)\n"
    found = gather(workspace, "app.py", text, "value")
    assert [f.path for f in found] == ["pkg/units.py"]


# -- prompts ----------------------------------------------------------------------------------

FILES = (OtherFile("pkg/units.py", "def scale(value): ..."),)


def test_fill_in_middle_puts_the_files_ahead_in_the_repo_level_format() -> None:
    prompt = prompts.build_completion_prompt(
        "def f():\n    return sc",
        "\n",
        "python",
        "/ws/app.py",
        other_files=FILES,
        workspace=("ws", "app.py"),
    )
    assert prompt.other_files == OtherFiles(
        repo="ws", path="app.py", files=(("pkg/units.py", "def scale(value): ..."),)
    )
    fim = ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
    repo = ("<|repo_name|>", "<|file_sep|>")
    assert templates.fill_in_middle(fim, prompt, repo) == (
        "<|repo_name|>ws\n<|file_sep|>pkg/units.py\ndef scale(value): ...\n<|file_sep|>app.py\n"
        "<|fim_prefix|># /ws/app.py\ndef f():\n    return sc<|fim_suffix|>\n<|fim_middle|>"
    )
    # a model without repo-level tokens: a comment-headed block at the prefix's start
    assert templates.fill_in_middle(fim, prompt) == (
        "<|fim_prefix|># from pkg/units.py:\ndef scale(value): ...\n\n# /ws/app.py\ndef f():\n"
        "    return sc<|fim_suffix|>\n<|fim_middle|>"
    )
    assert templates.plain_completion(prompt).startswith("# from pkg/units.py:\n")
    # none found: the prompt is what it was without
    assert prompts.build_completion_prompt("a", "b", "python").other_files is None
    assert protocol.prompt_from_wire(protocol.prompt_to_wire(prompt)) == prompt


def test_the_chat_prompt_shows_the_definitions_first() -> None:
    [_, user] = prompts.build_cursor_completion_prompt(
        "x = sc", "\n", language="python", path="app.py", other_files=FILES
    )
    assert user.content.startswith(
        "Definitions from other files that my code uses:\n\n"
        "pkg/units.py:\n```python\ndef scale(value): ...\n```\n\nComplete my Python code"
    )
    [_, bare] = prompts.build_cursor_completion_prompt("x = sc", "\n", language="python")
    assert bare.content.startswith("Complete my Python code")


def test_completion_prompt_without_files_is_unchanged() -> None:
    assert prompts.build_completion_prompt("x", "y", "python") == CompletionPrompt(
        prefix="x", suffix="y"
    )
