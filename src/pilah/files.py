"""One helper per file chore: atomic writes (a kill never leaves half a file behind), JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` writes a temporary file beside `path`, which then replaces `path` in one step. The
    temporary name keeps the suffix, for writers that check it (Keras's `.keras`, `.weights.h5`)."""
    tmp = path.with_name(f"tmp-{path.name}")
    write(tmp)
    os.replace(tmp, path)


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _write_rows(handle: TextIO, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]], atomic: bool = True) -> None:
    """A CSV file with a header row; `rows` may be a generator, written as it yields. `atomic=False` for a long
    job's results, so that an interrupted job keeps the rows it wrote."""

    def write(target: Path) -> None:
        with open(target, "w", newline="", encoding="utf-8") as handle:
            _write_rows(handle, header, rows)

    if atomic:
        atomic_write(Path(path), write)
    else:
        write(Path(path))


def csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    _write_rows(buffer, header, rows)
    return buffer.getvalue()


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows (as dicts) of a CSV file written by `write_csv`."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or ()), list(reader)
