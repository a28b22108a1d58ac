"""The LSP base protocol's framing (``Content-Length: N`` headers, then N bytes), read defensively.

A header block is one or more lines, each exactly ``Content-Length: N`` or ``Content-Type: ...``
and ending in CRLF, then an empty line. Anything else (a missing, non-numeric, too short or too
long Content-Length, stray bytes) is a framing error: the reader says why and skips to the next
valid header, so one bad message never silences the ones after it.

Resynchronising is safe because a valid header line can never occur inside a valid JSON body: a
raw CR or LF cannot appear in a JSON string, and ``Content-Length`` outside a string is not JSON.
So a body that contains one was cut short, and the header that follows starts the next message;
and a message over the size limit is skipped by looking for the next header, never by buffering it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

DEFAULT_MAX_MESSAGE_BYTES = 64 << 20
MAX_HEADER_BYTES = 8192  # a header block longer than this is not one
READ_SIZE = 1 << 16

HEADER_LINE = re.compile(rb"Content-Length: (\d{1,19})\r\n|Content-Type: [^\r\n]{0,200}\r\n")
LENGTH_LINE = re.compile(rb"Content-Length: \d{1,19}\r\n")
_LONGEST_PARTIAL = len(b"Content-Length: ") + 19 + 2

Read = Callable[[], Awaitable[bytes]]  # the next bytes available; b"" at the end of the stream


@dataclass(frozen=True)
class Body:
    """The bytes of one message, as framed (not yet parsed)."""

    data: bytes


@dataclass(frozen=True)
class FramingError:
    """Bytes that were not a message, and why; the reader has moved on to the next header."""

    reason: str


class FrameReader:
    def __init__(self, read: Read, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self._read = read
        self.max_message_bytes = max_message_bytes
        self._buf = bytearray()
        self._eof = False
        self._skipping = False  # discarding bytes up to the next valid header

    async def next(self) -> Body | FramingError | None:
        """The next message body or framing error; None at the end of the stream."""
        while True:
            if self._skipping and not await self._skip_to_header():
                return None
            header_end = await self._header_end()
            if header_end is None:
                rest, self._buf = bytes(self._buf), bytearray()
                return FramingError(f"the stream ended inside a header: {_show(rest)}") if rest.strip() else None
            if header_end < 0:
                return self._resync("no blank line ends the header within "
                                    f"{MAX_HEADER_BYTES} bytes: {self._preview()}")
            length = self._parse_header(header_end)
            if isinstance(length, str):
                return self._resync(length)
            del self._buf[:header_end + 4]
            if length > self.max_message_bytes:
                self._skipping = True
                return FramingError(f"a message of {length} bytes is over the limit of {self.max_message_bytes} "
                                    "bytes (--max-message-bytes); it was skipped")
            return await self._body(length)

    async def _fill(self) -> bool:
        if self._eof:
            return False
        data = await self._read()
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def _header_end(self) -> int | None:
        """Where the blank line ending the header starts; -1 if none comes soon enough; None at the end."""
        while True:
            while self._buf[:2] == b"\r\n":  # a stray empty line between messages is harmless
                del self._buf[:2]
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                return end if end <= MAX_HEADER_BYTES else -1
            if len(self._buf) > MAX_HEADER_BYTES:
                return -1
            if not await self._fill():
                return None

    def _parse_header(self, header_end: int) -> int | str:
        """The Content-Length of the header block, or why the block is not a valid header."""
        block = bytes(self._buf[:header_end + 2])
        length: int | None = None
        position = 0
        while position < len(block):
            line = HEADER_LINE.match(block, position)
            if line is None:
                bad = block[position:block.find(b"\r\n", position)]
                return f"not a header line: {_show(bad)}"
            if line.group(1) is not None:
                if length is not None:
                    return "two Content-Length headers"
                length = int(line.group(1))
            position = line.end()
        if length is None:
            return f"a header without Content-Length: {_show(block)}"
        return length

    async def _body(self, length: int) -> Body | FramingError:
        checked = 0
        while len(self._buf) < length:
            # A header inside the bytes of a body means the body was cut short (Content-Length too long).
            cut = LENGTH_LINE.search(self._buf, max(checked - _LONGEST_PARTIAL, 0))
            if cut is not None:
                del self._buf[:cut.start()]
                return FramingError(f"the message ended before its Content-Length of {length} bytes "
                                    f"(after {cut.start()}); the next header follows")
            checked = len(self._buf)
            if not await self._fill():
                self._buf.clear()
                return FramingError(f"the stream ended {length - checked} bytes short of a message")
        data = bytes(self._buf[:length])
        del self._buf[:length]
        return Body(data)

    def resync_after(self, body: Body) -> bool:
        """A body that is not JSON may hold the start of the next message (its Content-Length was too
        long, and the next message was sent): put back from its header on. True if there was one."""
        found = LENGTH_LINE.search(body.data, 1)
        if found is None:
            partial = _partial_header_at_end(body.data)
            if partial is None:
                return False
            self._buf[:0] = body.data[partial:]
            return True
        self._buf[:0] = body.data[found.start():]
        return True

    def _resync(self, reason: str) -> FramingError:
        del self._buf[:1]
        self._skipping = True
        return FramingError(reason)

    async def _skip_to_header(self) -> bool:
        """Drop bytes up to the next valid Content-Length line; False at the end of the stream."""
        while True:
            found = LENGTH_LINE.search(self._buf)
            if found is not None:
                del self._buf[:found.start()]
                self._skipping = False
                return True
            keep = _partial_header_at_end(bytes(self._buf[-_LONGEST_PARTIAL:]))
            tail = bytes(self._buf[-_LONGEST_PARTIAL:][keep:]) if keep is not None else b""
            self._buf[:] = tail
            if not await self._fill():
                return False

    def _preview(self) -> str:
        return _show(bytes(self._buf[:60]))


def _partial_header_at_end(data: bytes) -> int | None:
    """Where a Content-Length line that more bytes may complete begins, at the end of ``data``."""
    start = max(len(data) - _LONGEST_PARTIAL, 0)
    while (start := data.find(b"C", start)) >= 0:
        if _is_partial_header(data[start:]):
            return start
        start += 1
    return None


def _is_partial_header(tail: bytes) -> bool:
    prefix = b"Content-Length: "
    if len(tail) <= len(prefix):
        return prefix.startswith(tail)
    return tail.startswith(prefix) and re.fullmatch(rb"\d{0,19}\r?", tail[len(prefix):]) is not None


def _show(data: bytes) -> str:
    text = repr(data[:60])[2:-1]
    return f"'{text}'" + ("…" if len(data) > 60 else "")
