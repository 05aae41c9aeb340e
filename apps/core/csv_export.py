"""CSV writing for exports that people open in spreadsheets.

Customer-controlled text (a WeChat nickname, a remark) starting with ``=``, ``+``, ``-`` or
``@`` would run as a formula in Excel or WPS ("CSV injection"). Such cells are written with a
leading apostrophe, which spreadsheets show as text; numbers are left alone.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")


def safe_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


class SafeWriter:
    """``csv.writer`` with every cell passed through :func:`safe_cell`."""

    def __init__(self, file, **kwargs):
        self._writer = csv.writer(file, **kwargs)

    def writerow(self, row: Iterable[Any]):
        return self._writer.writerow([safe_cell(cell) for cell in row])


def writer(file, **kwargs) -> SafeWriter:
    return SafeWriter(file, **kwargs)
