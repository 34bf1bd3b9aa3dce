"""Bytes in: the head of a binary file tells its format (CSV or a JSON page) and source; provider_file_open."""

from __future__ import annotations

import codecs
import io
from typing import Any

from reconciliation.parsers.csv_files import csv_open
from reconciliation.parsers.json_pages import json_open
from reconciliation.parsers.rows import HEAD_BYTES, SOURCES, BinaryReadable, ProviderFile, UnreadableFile


class _ByteSource(io.RawIOBase):
    """A raw stream over any object with read(n), starting with bytes already read from it. Closing it leaves the
    underlying file open (the caller owns it)."""

    def __init__(self, head: bytes, stream: BinaryReadable) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        target = memoryview(buffer).cast("B")
        if self._head.nbytes:
            count = min(len(target), self._head.nbytes)
            target[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._stream.read(len(target))
        if not data:
            return 0
        if not isinstance(data, bytes | bytearray):
            raise UnreadableFile("the upload is not a binary file")
        target[: len(data)] = data
        return len(data)


def _text(head: bytes, stream: BinaryReadable) -> io.TextIOWrapper:
    # bad bytes become U+FFFD, found per field below: one bad row is a row error, never the end of the file
    raw = io.BufferedReader(_ByteSource(head, stream), buffer_size=HEAD_BYTES)
    return io.TextIOWrapper(raw, encoding="utf-8-sig", errors="replace", newline="")


def _read_head(stream: BinaryReadable) -> bytes:
    try:
        head = stream.read(HEAD_BYTES)
    except (OSError, ValueError) as exc:
        raise UnreadableFile(f"the file cannot be read: {exc}") from None
    if not isinstance(head, bytes | bytearray):
        raise UnreadableFile("the upload is not a binary file")
    return bytes(head)


def _looks_like_json(head: bytes) -> bool:
    stripped = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    return stripped[:1] in (b"{", b"[")


def provider_file_open(stream: BinaryReadable, *, source: str | None = None) -> ProviderFile:
    """The file's source, format and rows. Raises UnreadableFile when the file cannot be read at all."""
    if source is not None and source not in SOURCES:
        raise UnreadableFile(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
    head = _read_head(stream)
    if not head.strip(codecs.BOM_UTF8 + b" \t\r\n"):
        raise UnreadableFile("the file is empty")
    if _looks_like_json(head):
        return json_open(_text(head, stream), source)
    return csv_open(_text(head, stream), source)
