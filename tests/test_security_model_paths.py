"""Model names from settings cannot reach outside the model cache: a name becomes one folder
inside it, a path is taken only as the explicit local folder it names (a model folder with
config.json), and nothing outside the cache is ever written or removed. (Pulled files are checked
by sha256 before use: tests/test_models_fetch.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from starchat_lsp.errors import EngineError
from starchat_lsp.models import store as store_module
from starchat_lsp.models.errors import PullError
from starchat_lsp.models.store import ModelStore, _store_name

HOSTILE_NAMES = [
    "..",
    ".",
    "../outside",
    "../../outside",
    "a/../../outside",
    "owner/..",
    "owner/.",
    "outside/..",
    "..\\outside",
    "~",
    "~/outside",
    "....",
    "-",
    "\x00",
    "a\x00b",
    ".locks",
    "owner/../../outside",
]


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModelStore, Path]:
    """A store in tmp/work/cache, run from tmp/work, with tmp/outside next to it (a canary)."""
    work = tmp_path / "work"
    (work / "cache").mkdir(parents=True)
    (work / "owner").mkdir()  # so that "owner/.." names a folder that exists
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path))
    downloads: list[tuple[str, Path]] = []
    monkeypatch.setattr(
        store_module, "download_from_hub", lambda repo, out: downloads.append((repo, out))
    )
    return ModelStore(work / "cache"), outside


def inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


@given(st.text(max_size=40))
def test_every_store_name_is_one_folder_inside_the_cache(text: str) -> None:
    root = Path("/cache/models")
    try:
        name = _store_name(text)
    except PullError:
        return
    assert "/" not in name and "\\" not in name and name not in (".", "..")
    assert (root / name).parent == root


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_a_hostile_name_never_reaches_outside_the_cache(
    places: tuple[ModelStore, Path], name: str
) -> None:
    store, outside = places
    try:
        resolved = store.resolve(name)
    except EngineError:
        pass  # unknown, not pulled, not a model folder: one clear message
    else:
        # Only a hub id gets through unpulled, and a hub id is no path.
        assert resolved.is_hub_id and ".." not in resolved.location.split("/"), resolved
    for act in (store.path, store.pull):
        try:
            found = act(name)
        except (EngineError, PullError):
            continue
        assert inside(found, store.root), (act.__name__, name, found)
    assert store.remove(name) is False
    assert (outside / "canary").read_text() == "keep me"


def test_dots_in_a_hub_id_are_not_a_hub_id(places: tuple[ModelStore, Path]) -> None:
    store, _ = places
    # "owner/.." is the folder the server runs in: as a hub id, transformers would load it.
    for name in ("owner/..", "owner/.", "owner/../../outside"):
        with pytest.raises(EngineError):
            store.resolve(name)
    assert store.resolve("bigcode/starcoder2-3b").is_hub_id


def test_a_path_is_taken_only_as_the_local_model_folder_it_names(
    places: tuple[ModelStore, Path],
) -> None:
    store, outside = places
    with pytest.raises(EngineError, match="not a model folder"):
        store.resolve(str(outside))  # exists, but holds no model
    (outside / "config.json").write_text("{}")
    for name in (str(outside), "../outside"):
        resolved = store.resolve(name)
        assert Path(resolved.location) == outside.resolve() and not resolved.is_hub_id
    # Pulling it copies it into the cache; the original stays as it was.
    pulled = store.pull("../outside")
    assert inside(pulled, store.root) and (pulled / "hf" / "config.json").is_file()
    assert sorted(p.name for p in outside.iterdir()) == ["canary", "config.json"]
    assert store.remove("outside") is True
    assert (outside / "canary").read_text() == "keep me"
