"""The local model cache: one folder per model, pulled from the catalogue, a local path or the hub.

<root>/<name>/model.gguf      the verified GGUF file: what the llama.cpp backend (the default) runs
<root>/<name>/hf/             the transformers folder: converted from the GGUF on the transformers
                              backend's first use (a pulled folder or hub model: the model itself)
<root>/<name>/manifest.json   where it came from; written last, so it marks a complete pull; a
                              conversion adds the converter's version once the folder is whole
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
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
    size_on_disk: int  # bytes, leftovers of an unfinished pull or conversion included
    is_default: bool
    in_catalogue: bool
    gguf_size: int | None = None  # the GGUF file's bytes; None: the model has none
    transformers_size: int = 0  # the transformers folder's bytes; 0: none (not converted)
    converted: bool = False  # a GGUF model's transformers copy is there and up to date


@dataclass(frozen=True, kw_only=True)
class ResolvedModel:
    """What the engine loads: a model folder, or a hub id it may try (and fail on, offline)."""

    name: str
    location: str  # a folder path, or the hub id when is_hub_id
    is_hub_id: bool
    gguf_path: Path | None = None  # the GGUF file the model came from, for llama.cpp
    store_root: Path | None = None  # the store that holds it; None: a folder or a hub id

    def prepare_transformers(self, say: Callable[[str], None] | None = None) -> None:
        """Make `location` loadable by transformers: a pulled GGUF is converted there on first
        use (once; minutes for a large model), with its progress told to `say` in words."""
        if self.store_root is not None and self.gguf_path is not None:
            ModelStore(self.store_root).converted(self.name, _in_words(say) if say else None)


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
            self._status(entry.name, entry.description, in_catalogue=True)
            for entry in self.catalogue
        ]
        known = {entry.name for entry in self.catalogue}
        others = self.root.iterdir() if self.root.is_dir() else iter(())
        for folder in sorted(others):
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in known:
                source = self._manifest(folder.name).get("source", "(unfinished pull)")
                statuses.append(self._status(folder.name, str(source), in_catalogue=False))
        return statuses

    def _status(self, name: str, description: str, *, in_catalogue: bool) -> ModelStatus:
        folder = self.root / name
        gguf = folder / "model.gguf"
        pulled = self._is_complete(name)
        has_gguf = gguf.is_file() or bool(self._manifest(name).get("gguf"))
        return ModelStatus(
            name=name,
            description=description,
            pulled=pulled,
            size_on_disk=_disk_size(folder),
            is_default=name == DEFAULT_MODEL,
            in_catalogue=in_catalogue,
            gguf_size=gguf.stat().st_size if gguf.is_file() else (0 if has_gguf else None),
            transformers_size=_disk_size(folder / "hf"),
            converted=pulled and has_gguf and self._is_converted(name),
        )

    def pull(self, name_or_path_or_hub_id: str, progress: Progress | None = None) -> Path:
        """Fetch a model (a GGUF: verified, not converted); returns its folder in the store (at
        once if already pulled). `converted` makes its transformers copy."""
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
            return self.root / name
        raise UnknownModelError(text, self._known())

    def path(self, name: str) -> Path:
        """The folder of a pulled model: its model.gguf, and hf/ (its transformers folder)."""
        return self.root / self._pulled_name(name)

    def converted(self, name: str, progress: Progress | None = None) -> Path:
        """The transformers folder of a pulled model; a GGUF is converted into it here the first
        time (and again after a converter change), once across processes."""
        store_name = self._pulled_name(name)
        folder = self.root / store_name
        if not self._manifest(store_name).get("gguf") or self._is_converted(store_name):
            return folder / "hf"
        with self._lock(store_name, progress):
            if not self._is_converted(store_name):  # another process may have done it meanwhile
                self._convert(folder, progress)
                manifest = self._manifest(store_name)
                manifest.update(_converter_fields(), hf_size=_disk_size(folder / "hf"))
                self._save_manifest(store_name, manifest)
        return folder / "hf"

    def remove(self, name: str) -> bool:
        """Delete a model's folder; False if there was none."""
        store_name = self._store_name_of(name)
        if not store_name or not (self.root / store_name).is_dir():
            return False
        with self._lock(store_name):
            shutil.rmtree(self.root / store_name)
        return True

    def remove_converted(self, name: str) -> int:
        """Delete a GGUF model's transformers copy (and a conversion's leftovers), keeping the
        GGUF; the bytes freed. PullError for a model whose transformers folder is the model."""
        store_name = self._store_name_of(name)
        folder = self.root / (store_name or "")
        if not store_name or not folder.is_dir():
            return 0
        with self._lock(store_name):
            manifest = self._manifest(store_name)
            if manifest and not manifest.get("gguf"):
                raise PullError(
                    f"{store_name} has no GGUF: its transformers folder is the model itself "
                    f"(`starchat-lsp models remove {store_name}` deletes it)"
                )
            leftovers = [folder / "hf", folder / "hf.partial", folder / "convert.log"]
            freed = sum(_disk_size(p) if p.is_dir() else _file_size(p) for p in leftovers)
            if manifest:
                manifest.update(converter=None, converted_with=None, hf_size=None)
                self._save_manifest(store_name, manifest)
            for path in leftovers:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        return freed

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
                return folder
            gguf = folder / "model.gguf"
            # model.gguf only ever appears after its checksum matched (see fetch.join_parts).
            if not (gguf.is_file() and gguf.stat().st_size == entry.size):
                fetch_gguf(entry, gguf, folder / "downloads", progress)
            shutil.rmtree(folder / "downloads", ignore_errors=True)
            self._write_manifest(
                entry.name,
                source=entry.source,
                origin="catalogue",
                gguf={"file": entry.gguf_file, "size": entry.size, "sha256": entry.sha256},
            )
        return folder

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
                return folder
            if is_gguf:
                shutil.rmtree(folder / "hf", ignore_errors=True)  # converted from another file
                gguf = copy_gguf(path, folder / "model.gguf", progress)
            else:
                gguf = None
                copy_folder(path, folder / "hf")
            self._write_manifest(name, source=str(path), origin="local", gguf=gguf)
        return folder

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
        return self.root / name

    def _convert(self, folder: Path, progress: Progress | None) -> None:
        log = folder / "convert.log"
        convert_gguf(folder / "model.gguf", folder / "hf", log, progress)
        log.unlink(missing_ok=True)

    def _write_manifest(
        self, name: str, *, source: str, origin: str, gguf: dict[str, object] | None
    ) -> None:
        manifest: dict[str, object] = {
            "name": name,
            "source": source,
            "origin": origin,
            "gguf": gguf,
            "converted_with": None,  # a GGUF's conversion fills these in (`converted`)
            "converter": None,
            "hf_size": None if gguf else _disk_size(self.root / name / "hf"),
            "pulled_at": _now(),
        }
        self._save_manifest(name, manifest)

    def _save_manifest(self, name: str, manifest: dict[str, object]) -> None:
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
        """Pulled: a GGUF model has its verified file, any other model its transformers folder."""
        folder = self.root / name
        if not (folder / "manifest.json").is_file():
            return False
        if self._manifest(name).get("gguf"):
            return (folder / "model.gguf").is_file()
        return (folder / "hf" / "config.json").is_file()

    def _is_converted(self, name: str) -> bool:
        """A GGUF model's transformers folder is whole and from this converter (an older one's
        is converted again on use)."""
        if not (self.root / name / "hf" / "config.json").is_file():
            return False
        converter = self._manifest(name).get("converter")
        return isinstance(converter, int) and converter >= CONVERTER_VERSION

    def _pulled_name(self, name: str) -> str:
        """The store name of a pulled model; ModelNotPulledError or UnknownModelError if none."""
        store_name = self._store_name_of(name)
        if store_name and self._is_complete(store_name):
            return store_name
        if self._find(name) or _HUB_ID.match(name.strip()) or store_name in self._folders():
            raise ModelNotPulledError(name.strip())
        raise UnknownModelError(name.strip(), self._known())

    def _resolved(self, name: str) -> ResolvedModel:
        folder = self.root / name
        gguf = folder / "model.gguf"
        return ResolvedModel(
            name=name,
            location=str(folder / "hf"),
            is_hub_id=False,
            gguf_path=gguf if gguf.is_file() else None,
            store_root=self.root,
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


def _file_size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _converter_fields() -> dict[str, object]:
    """What a manifest records of a finished conversion: the converter and the libraries used."""
    versions = {}
    for package in ("transformers", "torch", "gguf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {"converter": CONVERTER_VERSION, "converted_with": versions, "converted_at": _now()}


def _in_words(say: Callable[[str], None]) -> Progress:
    """A conversion's progress as the engines' load messages; each different message once."""
    last: list[str] = []

    def report(stage: str, done: int, total: int) -> None:
        if stage == "wait":
            text = "waiting for another pull or conversion of this model"
        elif total:
            text = f"converting the GGUF to transformers, once: {done}/{total} tensors"
        else:
            text = "converting the GGUF to transformers, once (minutes for a large model)"
        if last != [text]:
            last[:] = [text]
            say(text)

    return report
