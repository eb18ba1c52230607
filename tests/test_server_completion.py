"""Completion through the real server process: inline and classic, cache, supersede, UTF-16."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest_lsp
from lsprotocol import types
from pytest_lsp import client_capabilities

from lsp_client import StarchatTestClient, eventually
from test_server import CONFIG, request, start

NOTES = "file:///work/notes.txt"  # no grammar: the random model's text survives cleaning
CODE = "file:///work/emoji.py"


def options(model: Path, **completion: Any) -> dict[str, Any]:
    return {
        "model": {"name": str(model), "dtype": "float32"},
        "completion": {"debounce_ms": 0, "max_new_tokens": 24, **completion},
    }


def open_document(client: StarchatTestClient, uri: str, text: str, version: int = 1) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="plaintext", version=version, text=text
            )
        )
    )


def utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def end_of(text: str) -> types.Position:
    """The LSP position (UTF-16 columns) at the end of `text`."""
    lines = text.split("\n")
    return types.Position(line=len(lines) - 1, character=utf16(lines[-1]))


async def inline(
    client: StarchatTestClient, uri: str, position: types.Position
) -> list[types.InlineCompletionItem]:
    result = await client.text_document_inline_completion_async(
        types.InlineCompletionParams(
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Automatic
            ),
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=position,
        )
    )
    assert isinstance(result, list)
    return result


async def status(client: StarchatTestClient, msg_id: str) -> Any:
    return await request(client, "starchat/status", {}, msg_id)


def type_text(client: StarchatTestClient, uri: str, at: types.Position, text: str, version: int):
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=at, end=at), text=text
                )
            ],
        )
    )


@pytest_lsp.fixture(config=CONFIG)
async def fim(lsp_client: StarchatTestClient, tiny_fim_model: Path) -> Any:
    await start(lsp_client, options(tiny_fim_model))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def chat(lsp_client: StarchatTestClient, tiny_chatml_model: Path) -> Any:
    await start(lsp_client, options(tiny_chatml_model))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def slow(lsp_client: StarchatTestClient, tiny_fim_model: Path) -> Any:
    """Block completions run until the context is full: long enough to supersede one.

    The debounce is long (1 s) so that keystrokes sent 20 ms apart stay inside it even when a
    busy machine stalls the test or the server for a few hundred ms (it once did, at 300 ms).
    """
    await start(lsp_client, options(tiny_fim_model, max_new_tokens=100_000, debounce_ms=1000))
    yield
    await lsp_client.shutdown_session()


async def test_inline_completion_inserts_clean_text_at_the_cursor(
    fim: StarchatTestClient,
) -> None:
    text = "shopping list\n\n"
    open_document(fim, NOTES, text)
    items = await inline(fim, NOTES, end_of(text))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item.insert_text, str) and item.insert_text.strip()
    assert "<fim_" not in item.insert_text and "<|" not in item.insert_text
    assert item.range is not None and item.range.start == item.range.end == end_of(text)
    assert (await status(fim, "s1")).generations == 1


async def test_typing_through_a_suggestion_costs_no_model_run(fim: StarchatTestClient) -> None:
    text = "shopping list\n\n"
    open_document(fim, NOTES, text)
    first = (await inline(fim, NOTES, end_of(text)))[0].insert_text
    assert isinstance(first, str) and len(first) >= 2
    again = await inline(fim, NOTES, end_of(text))
    assert again[0].insert_text == first
    # The user types the suggestion's first character: the rest comes from the cache.
    type_text(fim, NOTES, end_of(text), first[0], version=2)
    rest = await inline(fim, NOTES, end_of(text + first[0]))
    assert rest[0].insert_text == first[1:]
    report = await status(fim, "s2")
    assert report.generations == 1 and report.completion.cache_hits == 2


async def test_status_reports_each_completion_run_and_the_prompt_it_reused(
    fim: StarchatTestClient,
) -> None:
    text = "shopping list\n" + "".join(f"- item {i}\n" for i in range(20)) + "\n"
    open_document(fim, NOTES, text)
    first = (await inline(fim, NOTES, end_of(text)))[0].insert_text
    assert isinstance(first, str)
    # A character the suggestion does not start with: not from the cache, the model runs again.
    typed = "#" if first.startswith("@") else "@"
    type_text(fim, NOTES, end_of(text), typed, version=2)
    await inline(fim, NOTES, end_of(text + typed))
    report = await status(fim, "r1")
    assert report.generations == 2 and report.completion.model_runs == 2
    runs = report.completion.recent_runs
    assert [run.run for run in runs] == [1, 2]
    assert all(run.tokens_in > 0 and run.total_s >= 0 for run in runs)
    # Typing at the end of the text: the second prompt starts with the first one's prefix.
    assert 0 < runs[1].reused_tokens < runs[1].tokens_in


async def test_classic_completion_gives_one_item_replacing_the_typed_word(
    fim: StarchatTestClient,
) -> None:
    text = 'note "😀é" = shop'  # an astral emoji: 2 UTF-16 units, 1 code point, 4 bytes
    open_document(fim, NOTES, text)
    result = await fim.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=NOTES), position=end_of(text)
        )
    )
    assert isinstance(result, types.CompletionList) and result.is_incomplete
    assert len(result.items) == 1
    edit = result.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.end == end_of(text)
    assert edit.range.start.character == utf16('note "😀é" = ')  # UTF-16 columns
    assert edit.new_text.startswith("shop") and len(edit.new_text) > 4
    assert result.items[0].insert_text_format == types.InsertTextFormat.Snippet


async def test_tree_sitter_decides_with_non_ascii_text_before_the_cursor(
    fim: StarchatTestClient,
) -> None:
    # A byte/char mix-up looks 8 bytes too early, into the comment, and completes nothing.
    text = '# 😀😀 emoji\ns = "😀é"; x = '
    open_document(fim, CODE, text)
    await inline(fim, CODE, end_of(text))
    assert (await status(fim, "u1")).generations == 1
    # Inside the comment, tree-sitter says no: the model does not run.
    assert await inline(fim, CODE, types.Position(line=0, character=utf16("# 😀😀 emoji"))) == []
    assert await inline(fim, CODE, types.Position(line=1, character=2)) == []  # in a word
    assert (await status(fim, "u2")).generations == 1


async def test_chat_models_complete_through_a_chat_prompt(chat: StarchatTestClient) -> None:
    text = "shopping list\n\n"
    open_document(chat, NOTES, text)
    items = await inline(chat, NOTES, end_of(text))
    assert all("```" not in str(item.insert_text) for item in items)
    assert (await status(chat, "c1")).generations == 1


async def test_a_newer_request_stops_the_older_one(slow: StarchatTestClient) -> None:
    text = "shopping list\n\nmore\n"
    open_document(slow, NOTES, text)
    older = asyncio.ensure_future(inline(slow, NOTES, types.Position(line=1, character=0)))
    polls = itertools.count()

    async def older_runs() -> bool:  # its model run has started (after the 1 s debounce)
        return bool((await status(slow, f"w{next(polls)}")).generations == 1)

    await eventually(older_runs, "model run of the older request")
    started = time.monotonic()
    newer = await inline(slow, NOTES, types.Position(line=2, character=4))  # one line: quick
    assert await older == []  # superseded: answers nothing
    elapsed = time.monotonic() - started
    report = await status(slow, "s3")
    assert report.completion.superseded == 1 and report.generations == 2
    assert isinstance(newer, list)
    print(f"newer completion answered {elapsed:.2f} s after it superseded a long one")


async def test_requests_inside_the_debounce_run_the_model_once(slow: StarchatTestClient) -> None:
    text = "shopping list\n\nmore\n"
    open_document(slow, NOTES, text)
    # Three keystrokes well inside the 1 s debounce: only the last one asks the model.
    first = asyncio.ensure_future(inline(slow, NOTES, types.Position(line=1, character=0)))
    await asyncio.sleep(0.02)
    second = asyncio.ensure_future(inline(slow, NOTES, types.Position(line=3, character=0)))
    await asyncio.sleep(0.02)
    await inline(slow, NOTES, types.Position(line=2, character=4))  # one line: quick
    assert await first == [] and await second == []
    report = await status(slow, "d1")
    assert report.generations == 1 and report.completion.superseded == 2


async def test_completion_can_be_turned_off(fim: StarchatTestClient, tiny_fim_model: Path) -> None:
    fim.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=options(tiny_fim_model, enabled=False))
    )
    text = "shopping list\n\n"
    open_document(fim, NOTES, text)
    assert await inline(fim, NOTES, end_of(text)) == []
    assert (await status(fim, "off")).generations == 0


HELPERS = (
    "def scale(value, factor=2):\n"
    '    """Multiply the value by the factor, the way every total in this project is scaled '
    'before it is shown to anyone."""\n'
    "    return value * factor\n"
)


@pytest_lsp.fixture(config=CONFIG)
async def in_workspace(lsp_client: StarchatTestClient, tiny_fim_model: Path, tmp_path: Path) -> Any:
    """A server whose workspace folder is tmp_path, holding pkg/helpers.py."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "helpers.py").write_text(HELPERS)
    await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=client_capabilities("visual-studio-code"),
            initialization_options=options(tiny_fim_model),
            root_uri=tmp_path.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=tmp_path.as_uri(), name="project")],
        )
    )
    yield
    await lsp_client.shutdown_session()


async def test_other_files_send_the_imported_definition_to_the_model(
    in_workspace: StarchatTestClient, tiny_fim_model: Path, tmp_path: Path
) -> None:
    uri = (tmp_path / "app.py").as_uri()
    text = (
        "from pkg.helpers import scale\n\n\ndef total(values):\n    base = scale(sum(values))\n    "
    )
    open_document(in_workspace, uri, text)
    await inline(in_workspace, uri, end_of(text))  # completion.other_files is off by default
    in_workspace.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=options(tiny_fim_model, other_files=True))
    )
    await inline(in_workspace, uri, end_of(text))  # not the cached answer: another prompt
    report = await status(in_workspace, "files")
    without, with_files = (run.tokens_in for run in report.completion.recent_runs)
    # the prompt grew by scale's definition (the tiny tokenizer: about 0.8 tokens a character)
    assert with_files - without > len(HELPERS) // 2
    assert report.completion.model_runs == 2


@pytest_lsp.fixture(config=CONFIG)
async def utf8(lsp_client: StarchatTestClient, tiny_fim_model: Path) -> Any:
    """A client that negotiates UTF-8 columns (as Neovim 0.11 does)."""
    capabilities = client_capabilities("visual-studio-code")
    capabilities.general = types.GeneralClientCapabilities(
        position_encodings=[types.PositionEncodingKind.Utf8]
    )
    result = await lsp_client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities, initialization_options=options(tiny_fim_model)
        )
    )
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    yield
    await lsp_client.shutdown_session()


async def test_columns_are_in_the_negotiated_units(utf8: StarchatTestClient) -> None:
    text = 'note "😀é" = shop'
    open_document(utf8, NOTES, text)
    end = types.Position(line=0, character=len(text.encode("utf-8")))
    result = await utf8.text_document_completion_async(
        types.CompletionParams(text_document=types.TextDocumentIdentifier(uri=NOTES), position=end)
    )
    assert isinstance(result, types.CompletionList) and len(result.items) == 1
    edit = result.items[0].text_edit
    assert isinstance(edit, types.TextEdit) and edit.range.end == end
    assert edit.range.start.character == len('note "😀é" = '.encode())  # bytes


def prefetch(client: StarchatTestClient, uri: str, position: types.Position | None) -> None:
    place: dict[str, Any] = {"textDocument": {"uri": uri}}
    if position is not None:
        place["position"] = {"line": position.line, "character": position.character}
    client.protocol.notify("starchat/prefetch", place)


async def test_a_prefetch_reads_a_place_before_its_first_completion(
    fim: StarchatTestClient,
) -> None:
    items = [f"- item {i}\n" for i in range(30)]
    text = "shopping list\n" + "".join(items[:15]) + "\n" + "".join(items[15:])
    open_document(fim, NOTES, text)
    place = types.Position(line=16, character=0)  # the empty line amid the items
    prefetch(fim, NOTES, place)
    polls = itertools.count()

    async def prefetched() -> bool:
        report = await status(fim, f"p{next(polls)}")
        return bool(report.completion.model_runs == 1 and report.running == 0)

    await eventually(prefetched, "the prefetch's model run")
    await inline(fim, NOTES, place)  # the first key at the place
    runs = (await status(fim, "p-done")).completion.recent_runs
    assert [run.prefetch for run in runs] == [True, False]
    # the completion found the place's text in the model's cache: it read a few tokens only
    assert runs[1].reused_tokens >= runs[1].tokens_in - 8, runs[1]


async def test_a_prefetch_can_be_turned_off_and_a_malformed_one_is_ignored(
    fim: StarchatTestClient, tiny_fim_model: Path
) -> None:
    text = "shopping list\n\n"
    open_document(fim, NOTES, text)
    prefetch(fim, NOTES, None)  # no position: logged, no reply, nothing runs
    fim.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=options(tiny_fim_model, prefetch=False))
    )
    prefetch(fim, NOTES, end_of(text))
    await asyncio.sleep(0.5)  # the debounce is 0: a prefetch would have run by now
    assert (await status(fim, "off")).generations == 0
    assert await inline(fim, NOTES, end_of(text))  # the server still completes


async def test_a_key_during_a_prefetchs_wait_stops_it_without_a_supersede(
    slow: StarchatTestClient,
) -> None:
    text = "shopping list\n\nmore\n"
    open_document(slow, NOTES, text)
    prefetch(slow, NOTES, types.Position(line=1, character=0))  # waits the 1 s debounce
    await asyncio.sleep(0.1)
    await inline(slow, NOTES, types.Position(line=2, character=4))  # one line: quick
    report = await status(slow, "k1")
    assert [run.prefetch for run in report.completion.recent_runs] == [False]
    assert report.completion.superseded == 0  # a prefetch is no request
