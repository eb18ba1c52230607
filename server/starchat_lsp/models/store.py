"""The local model cache: one folder per model, pulled from the catalogue, a local path or the hub.

<root>/<name>/model.gguf      the verified GGUF file (kept: the llama.cpp backend reads it)
<root>/<name>/hf/             the transformers folder the engine loads
<root>/<name>/manifest.json   where it came from; written last, so it marks a complete pull
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import platformdirs

from starchat_lsp.errors import ModelLoadError
from starchat_lsp.models.catalogue import CATALOGUE, DEFAULT_MODEL, CatalogueEntry
from starchat_lsp.models.convert import CONVERTER_VERSION, convert_gguf
from starchat_lsp.models.errors import ModelNotPulledError, PullError, UnknownModelError
from starchat_lsp.models.fetch import Progress, fetch_gguf
from starchat_lsp.models.hub import download_from_hub
from starchat_lsp.models.local import copy_folder, copy_gguf

CACHE_ENV = "STARCHAT_LSP_CACHE"
# owner/name; never ".." anywhere nor a name of dots only: "owner/.." is a path, not a hub id
_HUB_ID = re.compile(r"^(?!.*\.\.)[A-Za-z0-9][\w.-]*/(?!\.+$)[\w.-]+$")


@dataclass(frozen=True, kw_only=True)
class ModelStatus:
    name: str
    description: str
    pulled: bool
    size_on_disk: int  # bytes, leftovers of an unfinished pull included
    is_default: bool
    in_catalogue: bool


@dataclass(frozen=True, kw_only=True)
class ResolvedModel:
    """What the engine loads: a model folder, or a hub id it may try (and fail on, offline)."""

    name: str
    location: str  # a folder path, or the hub id when is_hub_id
    is_hub_id: bool
    gguf_path: Path | None = None  # the GGUF file the model came from, for llama.cpp


def default_root() -> Path:
    """$STARCHAT_LSP_CACHE if set, else the user's cache folder + /models."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(platformdirs.user_cache_dir("starchat-lsp")) / "models"


class ModelStore:
    def __init__(
        self, root: Path | None = None, catalogue: Sequence[CatalogueEntry] = CATALOGUE
    ) -> None:
        self.root = root or default_root()
        self.catalogue = tuple(catalogue)

    def list(self) -> builtins.list[ModelStatus]:
        """Every catalogue model, then anything else in the store, pulled or not."""
        statuses = [
            ModelStatus(
                name=entry.name,
                description=entry.description,
                pulled=self._is_complete(entry.name),
                size_on_disk=_disk_size(self.root / entry.name),
                is_default=entry.name == DEFAULT_MODEL,
                in_catalogue=True,
            )
            for entry in self.catalogue
        ]
        known = {entry.name for entry in self.catalogue}
        others = self.root.iterdir() if self.root.is_dir() else iter(())
        for folder in sorted(others):
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in known:
                manifest = self._manifest(folder.name)
                statuses.append(
                    ModelStatus(
                        name=folder.name,
                        description=str(manifest.get("source", "(unfinished pull)")),
                        pulled=self._is_complete(folder.name),
                        size_on_disk=_disk_size(folder),
                        is_default=False,
                        in_catalogue=False,
                    )
                )
        return statuses

    def pull(self, name_or_path_or_hub_id: str, progress: Progress | None = None) -> Path:
        """Make a model ready to load; returns its transformers folder (at once if already done)."""
        text = name_or_path_or_hub_id.strip()
        entry = self._find(text)
        if entry:
            return self._pull_catalogue(entry, progress)
        path = Path(text).expanduser()
        if path.exists():
            return self._pull_local(path.resolve(), progress)
        if _looks_like_path(text):
            raise PullError(f"{text}: no such file or folder")
        if _HUB_ID.match(text):
            return self._pull_hub(text, progress)
        name = _store_name(text)
        if self._is_complete(name):
            return self.root / name / "hf"
        raise UnknownModelError(text, self._known())

    def path(self, name: str) -> Path:
        """The transformers folder of a pulled model."""
        store_name = self._store_name_of(name)
        if store_name and self._is_complete(store_name):
            return self.root / store_name / "hf"
        if self._find(name) or _HUB_ID.match(name.strip()) or store_name in self._folders():
            raise ModelNotPulledError(name.strip())
        raise UnknownModelError(name.strip(), self._known())

    def remove(self, name: str) -> bool:
        """Delete a model's folder; False if there was none."""
        store_name = self._store_name_of(name)
        if not store_name or not (self.root / store_name).is_dir():
            return False
        with self._lock(store_name):
            shutil.rmtree(self.root / store_name)
        return True

    def resolve(self, name_or_path: str) -> ResolvedModel:
        """Turn a setting (catalogue name, folder, pulled name, hub id) into what to load."""
        text = name_or_path.strip()
        entry = self._find(text)
        if entry:
            if not self._is_complete(entry.name):
                raise ModelNotPulledError(entry.name)
            return self._resolved(entry.name)
        path = Path(text).expanduser() if text else None
        if path and path.is_dir() and (path / "config.json").is_file():
            return ResolvedModel(name=path.name, location=str(path.resolve()), is_hub_id=False)
        if path and path.is_file() and path.suffix.lower() == ".gguf":
            raise ModelLoadError(
                f"{text} is a GGUF file: run `starchat-lsp models pull {text}` first, "
                "then use the name it prints"
            )
        if path and path.exists():
            raise ModelLoadError(f"{text} is not a model folder (it has no config.json)")
        if _looks_like_path(text):
            raise ModelLoadError(f"{text}: no such file or folder")
        store_name = self._store_name_of(text)
        if store_name and self._is_complete(store_name):
            return self._resolved(store_name)
        if _HUB_ID.match(text):
            return ResolvedModel(name=text, location=text, is_hub_id=True)
        raise UnknownModelError(text, self._known())

    # -- pulling -------------------------------------------------------------------------------

    def _pull_catalogue(self, entry: CatalogueEntry, progress: Progress | None) -> Path:
        folder = self.root / entry.name
        with self._lock(entry.name, progress):
            if self._is_complete(entry.name):
                return folder / "hf"
            gguf = folder / "model.gguf"
            # model.gguf only ever appears after its checksum matched (see fetch.join_parts).
            if not (gguf.is_file() and gguf.stat().st_size == entry.size):
                fetch_gguf(entry, gguf, folder / "downloads", progress)
            shutil.rmtree(folder / "downloads", ignore_errors=True)
            self._convert(folder, progress)
            self._write_manifest(
                entry.name,
                source=entry.source,
                origin="catalogue",
                gguf={"file": entry.gguf_file, "size": entry.size, "sha256": entry.sha256},
            )
        return folder / "hf"

    def _pull_local(self, path: Path, progress: Progress | None) -> Path:
        is_gguf = path.is_file() and path.suffix.lower() == ".gguf"
        if not is_gguf and not (path.is_dir() and (path / "config.json").is_file()):
            raise PullError(f"{path} is neither a .gguf file nor a model folder with config.json")
        name = _store_name(path.stem if is_gguf else path.name)
        if self._find(name):
            raise PullError(f"{path.name} has the name of a catalogue model: rename it first")
        folder = self.root / name
        with self._lock(name, progress):
            manifest = self._manifest(name)
            if self._is_complete(name) and manifest.get("source") == str(path):
                return folder / "hf"
            if is_gguf:
                gguf = copy_gguf(path, folder / "model.gguf", progress)
                self._convert(folder, progress)
            else:
                gguf = None
                copy_folder(path, folder / "hf")
            self._write_manifest(name, source=str(path), origin="local", gguf=gguf)
        return folder / "hf"

    def _pull_hub(self, repo_id: str, progress: Progress | None) -> Path:
        name = _store_name(repo_id)
        with self._lock(name, progress):
            if not self._is_complete(name):
                if progress:
                    progress("download", 0, 0)
                (self.root / name).mkdir(parents=True, exist_ok=True)
                try:
                    download_from_hub(repo_id, self.root / name / "hf")
                except PullError:
                    shutil.rmtree(self.root / name, ignore_errors=True)
                    raise
                self._write_manifest(name, source=repo_id, origin="hub", gguf=None)
        return self.root / name / "hf"

    def _convert(self, folder: Path, progress: Progress | None) -> None:
        log = folder / "convert.log"
        convert_gguf(folder / "model.gguf", folder / "hf", log, progress)
        log.unlink(missing_ok=True)

    def _write_manifest(
        self, name: str, *, source: str, origin: str, gguf: dict[str, object] | None
    ) -> None:
        versions = {}
        if gguf:
            for package in ("transformers", "torch", "gguf"):
                with contextlib.suppress(metadata.PackageNotFoundError):
                    versions[package] = metadata.version(package)
        manifest = {
            "name": name,
            "source": source,
            "origin": origin,
            "gguf": gguf,
            "converted_with": versions or None,
            "converter": CONVERTER_VERSION if gguf else None,
            "hf_size": _disk_size(self.root / name / "hf"),
            "pulled_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        target = self.root / name / "manifest.json"
        temporary = target.with_suffix(".json.partial")
        temporary.write_text(json.dumps(manifest, indent=2) + "\n")
        temporary.replace(target)

    # -- bookkeeping ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, name: str, progress: Progress | None = None) -> Iterator[None]:
        """One pull or remove of a model at a time, across processes (no-op without fcntl)."""
        try:
            import fcntl
        except ImportError:  # Windows
            yield
            return
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        with (locks / f"{name}.lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    progress("wait", 0, 0)
                fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _is_complete(self, name: str) -> bool:
        folder = self.root / name
        if not ((folder / "manifest.json").is_file() and (folder / "hf" / "config.json").is_file()):
            return False
        manifest = self._manifest(name)
        # A folder converted by an older converter is pulled (converted) again.
        converter = manifest.get("converter", 1)
        return not manifest.get("gguf") or (
            isinstance(converter, int) and converter >= CONVERTER_VERSION
        )

    def _resolved(self, name: str) -> ResolvedModel:
        folder = self.root / name
        gguf = folder / "model.gguf"
        return ResolvedModel(
            name=name,
            location=str(folder / "hf"),
            is_hub_id=False,
            gguf_path=gguf if gguf.is_file() else None,
        )

    def _manifest(self, name: str) -> dict[str, object]:
        try:
            loaded = json.loads((self.root / name / "manifest.json").read_text())
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _find(self, name: str) -> CatalogueEntry | None:
        wanted = name.strip().lower()
        return next((entry for entry in self.catalogue if entry.name == wanted), None)

    def _store_name_of(self, name: str) -> str | None:
        entry = self._find(name)
        if entry:
            return entry.name
        with contextlib.suppress(PullError):
            return _store_name(name)
        return None

    def _folders(self) -> set[str]:
        if not self.root.is_dir():
            return set()
        return {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}

    def _known(self) -> builtins.list[str]:
        return [entry.name for entry in self.catalogue] + sorted(
            self._folders() - {entry.name for entry in self.catalogue}
        )


def _looks_like_path(text: str) -> bool:
    """A path the user meant, not a name or a hub id (owner/name)."""
    return (
        text.startswith(("/", ".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or text.lower().endswith(".gguf")
    )


def _store_name(text: str) -> str:
    """A folder name for a model: lowercase, `owner/name` as `owner--name`, nothing odd."""
    name = re.sub(r"[^a-z0-9._-]+", "-", text.strip().lower().replace("/", "--")).strip("-.")
    if not name:
        raise PullError(f"cannot make a model name out of {text!r}")
    return name


def _disk_size(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
