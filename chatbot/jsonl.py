"""Files that survive a crash: append-only JSON lines (the feedback file, the question log),
and files replaced whole (:func:`replace_file`).

A line is written with one ``os.write`` on a file opened with ``O_APPEND`` (the kernel places
it whole at the end, even with several writers) and synced to disk before the call returns.
A crash in the middle of a write can still leave a partial last line; the next append starts
on a new line, so a torn line never swallows the next entry, and readers skip lines that are
not JSON.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def append_line(path: Path, line: str, max_bytes: int | None = None) -> bool:
    """Append ``line`` (one JSON document, no newline in it) to ``path``, creating the file
    and its folder; ``False`` (nothing written) when the file would grow past ``max_bytes``.

    Raises:
        OSError: the file cannot be written.
        ValueError: ``line`` holds a line break.
    """
    if "\n" in line or "\r" in line:
        raise ValueError("A JSON line cannot hold a line break: dump it with json.dumps (which escapes them).")
    data = (line + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(path, size) != b"\n":
            data = b"\n" + data  # a torn line left by a crash stays alone on its line
        if max_bytes is not None and size + len(data) > max_bytes:
            return False
        written = os.write(fd, data)
        if written != len(data):  # a full disk: say so rather than leave half a line unnoticed
            raise OSError(f"Only {written} of {len(data)} bytes were written to {path}.")
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def replace_file(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Replace ``path`` with ``data`` whole: written to a temporary file beside it (``mode``,
    less the umask), synced to disk, then renamed over it; a crash leaves the old file or the
    new one, never a mix.

    Raises:
        OSError: the file cannot be written (the temporary file is removed).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _last_byte(path: Path, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(size - 1)
        return file.read(1)


def read_objects(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each line of ``path`` as a JSON object, oldest first; ``None`` for a line that is not
    one (torn, edited, another program's); blank lines skipped. Nothing when there is no file.

    Raises:
        OSError: the file exists but cannot be read.
    """
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for line in lines:
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except ValueError:
                yield None
                continue
            yield raw if isinstance(raw, dict) else None
