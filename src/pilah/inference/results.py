"""One row per classified image, the same for every engine (`pilah predict`, `--engine ray`), written as CSV or
Parquet while the rows arrive, so an interrupted job keeps what it wrote."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any

from pilah import guidance
from pilah.errors import UsageError
from pilah.inference.calibration import GRADES
from pilah.inference.predictor import Prediction

FORMATS = (".csv", ".parquet")
PARQUET_ROWS = 1024  # rows per Parquet row group: written as they come
TEXT_COLUMNS = ("path", "label", "grade", "error", "stream", "where")  # every other column is a number but:
FLAG_COLUMNS = ("uncertain",)  # a true/false column


def columns(classes: list[str], region: str | None = None) -> list[str]:
    """path, label, confidence, uncertain, grade, novelty, error, one probability per class (and stream, where)."""
    return [
        "path",
        "label",
        "confidence",
        "uncertain",
        "grade",
        "novelty",
        "error",
        *classes,
        *(["stream", "where"] if region else []),
    ]


def names_no_class(result: Prediction) -> bool:
    """Whether the answer leaves the photo without a class: "none" (no promise holds) or "unfamiliar" (unlike the
    household waste Pilah learned). Its `label` is then only the most probable class, never the answer."""
    return result.grade in GRADES[3:]


def destination(result: Prediction, region: str, language: str) -> guidance.StreamAdvice:
    """Where the photo goes in `region`: its class's stream, or the region's safe default when no class is named."""
    if names_no_class(result):
        return guidance.when_unsure(region, language)
    return guidance.advice(result.label, region, language)


def row(result: Prediction, classes: list[str], region: str | None = None, language: str = "en") -> list[Any]:
    """A bad file keeps its row, with the reason in `error` and the rest empty."""
    if not result.label:
        return [result.source, "", "", "", "", "", f"{result.error_code}: {result.error}", *[""] * len(classes)] + (
            ["", ""] if region else []
        )
    probabilities = [f"{result.probabilities[c]:.6f}" for c in classes]
    novelty = "" if result.novelty is None else f"{result.novelty:.6f}"
    values = [result.source, result.label, f"{result.confidence:.6f}", result.uncertain, result.grade, novelty, ""]
    values += probabilities
    if region:
        place = destination(result, region, language)
        values += [place.stream_name, place.line if isinstance(place, guidance.UnsureAdvice) else place.where[0]]
    return values


class ResultWriter:
    """`with ResultWriter(path, header) as out: out.write(rows)` for a .csv or a .parquet file."""

    def __init__(self, path: str | Path, header: list[str]) -> None:
        self.path, self.header = Path(path), header
        if self.path.suffix.lower() not in FORMATS:
            raise UsageError(f"{self.path}: results are written as {' or '.join(FORMATS)}")
        self.csv = self.path.suffix.lower() == ".csv"
        self.rows = 0
        self._pending: list[list[Any]] = []

    def __enter__(self) -> ResultWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.csv:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._csv = csv.writer(self._file, lineterminator="\n")
            self._csv.writerow(self.header)
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            self._schema = pa.schema([(name, _arrow_type(name)) for name in self.header])
            self._parquet = pq.ParquetWriter(self.path, self._schema)
        return self

    def write(self, rows: Iterable[list[Any]]) -> None:
        for values in rows:
            self.rows += 1
            if self.csv:
                self._csv.writerow(values)
                self._file.flush()
            else:
                self._pending.append(values)
                if len(self._pending) >= PARQUET_ROWS:
                    self._flush_parquet()

    def _flush_parquet(self) -> None:
        import pyarrow as pa

        if self._pending:
            columns = zip(self.header, zip(*self._pending, strict=True), strict=True)
            data = {name: [_typed(name, v) for v in column] for name, column in columns}
            self._parquet.write_table(pa.table(data, schema=self._schema))
            self._pending.clear()

    def __exit__(self, kind: type | None, error: BaseException | None, trace: TracebackType | None) -> None:
        if self.csv:
            self._file.close()
        else:
            self._flush_parquet()
            self._parquet.close()


def _arrow_type(name: str):
    """Parquet keeps real types: text, true/false, and float64 for confidence, novelty and every probability."""
    import pyarrow as pa

    return pa.string() if name in TEXT_COLUMNS else pa.bool_() if name in FLAG_COLUMNS else pa.float64()


def _typed(name: str, value: Any) -> Any:
    """A row's value (as `row` formats it, or as Ray passes it: text) in its column's type; empty is null, except
    in text columns."""
    if name in TEXT_COLUMNS:
        return str(value)
    if value in ("", None):
        return None
    if name in FLAG_COLUMNS:
        return value if isinstance(value, bool) else str(value) == "True"
    return float(value)
