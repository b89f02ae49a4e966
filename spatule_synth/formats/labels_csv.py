"""``labels.csv`` of the reading dataset (``--tag_crops``): one row per crop, ``file,code,split``
(``file`` relative to the CSV's folder), with a header row; RFC 4180 quoting (a code or a file
name with a comma or a quote stays one field), ``\\r\\n`` line ends, UTF-8."""

from __future__ import annotations

import csv
import io

HEADER = ("file", "code", "split")


def csv_row(values: list[str] | tuple[str, ...]) -> bytes:
    """One CSV line of ``values``, as bytes."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(values)
    return buffer.getvalue().encode("utf-8")


def read_labels_csv(path: str) -> list[tuple[str, str, str]]:
    """The ``(file, code, split)`` rows of a labels.csv; ValueError if its header is not
    ``file,code,split``."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows or tuple(rows[0]) != HEADER:
        raise ValueError(f"{path}: not a labels.csv (its first row is not {','.join(HEADER)})")
    return [tuple(row) for row in rows[1:]]
