"""Incremental Server-Sent Events parser.

One network read is not one frame: frames and even multi-byte UTF-8 characters are split
across reads, several frames can share one read, and lines may end with ``\\r\\n``.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class SSEFrame:
    """One dispatched frame. ``data`` is None for frames without any ``data:`` line (Dify's
    ``event: ping`` keep-alive)."""

    event: str | None
    data: str | None


def iter_sse(chunks: Iterable[bytes]) -> Iterator[SSEFrame]:
    """Yield frames from raw byte chunks. A trailing frame without its blank line (the peer
    closed early) is dropped: an unterminated frame may be a truncated JSON document."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    buffer = ""
    event: str | None = None
    data: list[str] | None = None
    for chunk in chunks:
        buffer += decoder.decode(chunk)
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            line, buffer = buffer[: cut[0]], buffer[cut[1] :]
            if line == "":
                if event is not None or data is not None:
                    yield SSEFrame(event, None if data is None else "\n".join(data))
                event, data = None, None
                continue
            if line.startswith(":"):
                continue  # comment line, used by some servers as keep-alive
            field, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field == "event":
                event = value
            elif field == "data":
                data = (data or []) + [value]


def _line_end(buffer: str) -> tuple[int, int] | None:
    """(end of line, start of next line), or None when no complete line is buffered yet."""
    for i, char in enumerate(buffer):
        if char == "\n":
            return i, i + 1
        if char == "\r":
            if i + 1 == len(buffer):
                return None  # may be the first half of a \r\n split across reads
            return i, i + 2 if buffer[i + 1] == "\n" else i + 1
    return None
