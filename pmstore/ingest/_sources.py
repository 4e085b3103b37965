"""Streaming readers for files of Polymarket payloads: JSON lines, JSON arrays, documents.

A file is read in fixed-size chunks, decompressed on the fly when it is gzip
(recognised by its magic bytes, whatever its name), so memory stays bounded
whatever the file's size. Its form is decided from its first line:

- ``lines``: the first line is JSON on its own. Every non-blank line is one
  payload (an object, or an array of them). The position of a payload is
  the decompressed byte offset just past its line, so a run can resume, and
  a grown file continue, exactly where a previous run stopped. A later line
  that is not JSON is yielded as :class:`BadLine` (the caller rejects it);
  an unterminated last line that is not JSON yet is left unread (a writer
  may still be appending it): ``Source.incomplete_tail`` says so.
- ``array``: the file starts with ``[`` and is one JSON array (pretty-printed
  or one long line); its items are streamed with ijson's C parser. The
  position is the number of items consumed; resuming re-parses (without
  converting) the items already done.
- ``document``: one JSON document of at most ``MAX_DOCUMENT_BYTES``
  (decompressed), read whole; position 1 once consumed. A larger document
  is refused with a PayloadError saying how to stream it.

gzip is decompressed by ISA-L (``isal.igzip``, several times the standard
library's zlib: benchmarks/README.md, "gzip by ISA-L"), with the same
behaviour (a stream that breaks off, seeking, errors); where isal has no wheel
the standard library's ``gzip`` does it.

Costs: reading a plain file from a position is a seek; a gzip file has no
index, so resuming it decompresses everything before the position again
(~1 s per GB already ingested), which is correct, just not free.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final, Literal, NamedTuple, cast

import ijson
import orjson

from pmstore.errors import PayloadError

_INFLATE_ERRORS: tuple[type[BaseException], ...] = (OSError, zlib.error)
"""What a gzip reader raises for a stream that is not gzip or is corrupt."""

try:  # ISA-L's gzip reader: the same interface and errors as gzip.GzipFile, ~2.8x as fast
    from isal import isal_zlib
    from isal.igzip import IGzipFile as GzipReader

    _INFLATE_ERRORS += (cast("type[BaseException]", isal_zlib.error),)  # its stub says Exception
except ImportError:  # no isal wheel for this platform
    from gzip import GzipFile as GzipReader  # type: ignore[assignment]

__all__ = [
    "IDENTITY_BYTES",
    "MAX_DOCUMENT_BYTES",
    "BadLine",
    "Format",
    "GzipReader",
    "Item",
    "LineBlock",
    "Source",
    "open_source",
]

Format = Literal["lines", "array", "document"]

CHUNK_BYTES: Final = 1 << 20
"""Bytes read (decompressed) at a time."""

IDENTITY_BYTES: Final = 1 << 16
"""Leading decompressed bytes whose SHA-256 identifies a file (see ``pmstore.ingest._cursor``)."""

MAX_DOCUMENT_BYTES: Final = 256 << 20
"""Largest single JSON document (not lines, not an array) read whole."""

_FIRST_LINE_LIMIT: Final = 64 << 20
"""How far the first line is looked for when deciding a file's form."""

_BOM: Final = b"\xef\xbb\xbf"
_GZIP_MAGIC: Final = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A JSON-lines line that is not JSON: its text and the parser's complaint."""

    text: str
    error: str

    @classmethod
    def of(cls, line: bytes, error: orjson.JSONDecodeError) -> BadLine:
        """The bad line ``line`` that orjson refused with ``error``."""
        return cls(line.decode("utf-8", "replace"), error.msg)


class Item(NamedTuple):
    """One payload (parsed, a ``BadLine``, or a line's ``bytes`` from ``items(raw_lines=True)``),
    the position past it, and its line or index.

    ``number`` is the 1-based line (JSON lines), the item count including
    this one (arrays) or 1 (a document).
    """

    payload: Any
    end: int
    number: int
    unit: str  # "line", "item" or "document"

    @property
    def where(self) -> str:
        """``line N``, ``item N`` (0-based) or ``document``."""
        if self.unit == "line":
            return f"line {self.number}"
        return f"item {self.number - 1}" if self.unit == "item" else "document"


class LineBlock(NamedTuple):
    """Consecutive lines of a JSON-lines file (``Source.line_blocks``), without their newlines.

    ``offset`` is the byte position before the first line and ``number``
    the count of lines before it: line ``k`` (0-based) of the block is
    line ``number + k + 1`` of the file and ends ``len(line) + 1`` bytes
    after the previous one, or ``len(line)`` in the ``final`` block (an
    unterminated last line).
    """

    lines: list[bytes]
    offset: int
    number: int
    chunk: int
    """The block's place among those read from ``start`` (0, 1, ...: a chunk each; the
    ``final`` block's is one past the last chunk read)."""
    final: bool


class Source:
    """One file opened for streaming (see the module docstring); a context manager.

    ``raw_bytes_read`` (for progress) counts the file's own bytes consumed,
    compressed ones for gzip; ``identity`` holds its first ``IDENTITY_BYTES``
    decompressed bytes (fewer when the file is smaller). With ``limit`` the
    file reads as if it ended after its first ``limit`` bytes (several
    readers of a file that is still growing then all read the same content).
    """

    def __init__(self, path: Path, limit: int | None = None) -> None:
        self.path = path
        self._raw: io.BufferedReader = (
            path.open("rb")
            if limit is None
            else io.BufferedReader(_Capped(io.FileIO(path, "rb"), limit), CHUNK_BYTES)
        )
        try:
            self.compressed = self._raw.peek(2)[:2] == _GZIP_MAGIC
            self.stream = self._open_stream()
            self.identity = self._read_identity()
            self.format: Format = self._detect()
            size = path.stat().st_size  # after: it covers every byte read so far
            self.size = size if limit is None else min(size, limit)
        except BaseException:
            self._raw.close()
            raise
        self.incomplete_tail = 0
        """Bytes of an unterminated last line left unread (0 when none)."""
        self.truncated_gzip = False
        """True when the gzip stream ended before its end marker (a file still being written)."""

    def _open_stream(self) -> IO[bytes]:
        self._raw.seek(0)
        if self.compressed:
            return GzipReader(fileobj=self._raw, mode="rb")  # type: ignore[no-untyped-call,return-value]
        return self._raw

    def close(self) -> None:
        """Close the file."""
        self.stream.close()
        self._raw.close()

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def raw_bytes_read(self) -> int:
        """The file's own bytes read so far (compressed bytes for gzip)."""
        try:
            return self._raw.tell()
        except ValueError:  # closed
            return self.size

    def _read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes; b"" at the end (or where a gzip stream breaks off)."""
        try:
            return self.stream.read(n)
        except EOFError:  # gzip: "Compressed file ended before the end-of-stream marker"
            self.truncated_gzip = True
            return b""
        except _INFLATE_ERRORS as exc:
            raise PayloadError(f"{self.path}: cannot decompress: {exc}") from exc

    def _read_identity(self) -> bytes:
        head = self._read(IDENTITY_BYTES)
        self._rewind()
        return head

    def _rewind(self) -> None:
        self.stream.seek(0)
        self.truncated_gzip = False

    def _detect(self) -> Format:
        """The file's form, from its first line (see the module docstring)."""
        head = self.identity.lstrip(_BOM).lstrip()
        if not head:
            return "lines"
        first = self._first_line()
        self._rewind()
        if first is not None:
            try:
                orjson.loads(first)
            except orjson.JSONDecodeError:
                pass
            else:
                return "lines"
        return "array" if head[:1] == b"[" else "document"

    def _first_line(self) -> bytes | None:
        """The first non-blank line (None when longer than the limit)."""
        buffer = b""
        while len(buffer) <= _FIRST_LINE_LIMIT:
            chunk = self._read(CHUNK_BYTES)
            buffer += chunk
            while True:
                cut = buffer.find(b"\n")
                if cut < 0:
                    break
                line = buffer[:cut].lstrip(_BOM)
                if line.strip():
                    return line
                buffer = buffer[cut + 1 :]
            if not chunk:
                return buffer.lstrip(_BOM) if buffer.strip() else None
        return None

    # -- reading from a position ------------------------------------------------------

    def items(
        self, start: int = 0, start_line: int = 0, *, raw_lines: bool = False
    ) -> Iterator[Item]:
        """Yield the payloads after position ``start`` (see the module docstring).

        ``start_line`` is the number of lines before ``start`` (for ``where``).
        With ``raw_lines`` a JSON-lines file's payloads are its lines as
        ``bytes``, not parsed (the caller parses them, and rejects those that
        are not JSON); the last line of a file without a final newline is
        still parsed here (to tell a line being written from a bad one) and
        yielded, as ``bytes`` too, only when it is JSON.
        Raises PayloadError naming the file and place when it is not JSON (an
        array or document that breaks off), or when ``start`` does not fit
        the file (it is shorter, or ``start`` is not at a line boundary: the
        file was rewritten since, not appended to).
        """
        if self.format == "lines":
            return self._lines(start, start_line, raw_lines)
        if self.format == "array":
            return self._array(start)
        return self._document(start)

    def _seek_lines(self, start: int) -> tuple[bytes, int]:
        """Position the stream at ``start``, checking it is a line boundary of this file.

        Returns bytes already read past ``start`` (the reader continues with
        them), so a gzip stream is never sought backwards (which would
        decompress it from the beginning again), and how many bytes after
        ``start`` end the line before it: the last run may have taken an
        unterminated last line that has been terminated since (its ``\n`` or
        ``\r\n`` belongs to that line, not to a blank line after it).
        """
        if start == 0:
            self._rewind()
            return b"", 0
        try:
            self.stream.seek(start - 1)
        except EOFError:
            self.truncated_gzip = True
        before = self._read(1)
        after = self._read(1)
        if len(before) < 1:
            raise PayloadError(
                f"{self.path}: is shorter than what was already ingested of it ({start} bytes): "
                "it was rewritten or truncated since"
            )
        if before == b"\n" or after == b"":
            return after, 0
        if after == b"\n":
            return b"", 1
        if after == b"\r":
            following = self._read(1)
            return (b"", 2) if following == b"\n" else (after + following, 0)
        raise PayloadError(
            f"{self.path}: byte {start}, where the last run stopped, is not at the end of a "
            "line: the file was changed since (not only appended to)"
        )

    def line_blocks(
        self, start: int = 0, start_line: int = 0, owned: Callable[[int], bool] | None = None
    ) -> Iterator[LineBlock]:
        """Yield a JSON-lines file's lines after ``start``, a chunk's worth at a time.

        The lines come as in the file (blank ones included, a leading BOM
        removed), so a caller walking them counts line numbers and offsets
        itself (``LineBlock``); only an unterminated last line is parsed
        here: it is yielded (as a block of its own, ``final``) only when it
        is JSON, else it is left for the next run (``incomplete_tail``).
        With ``owned``, only the blocks whose ``chunk`` it accepts are
        yielded; the others are read past without being split (one of
        several readers of the same file: ``reading.read_stretches``).
        Raises PayloadError as ``items`` does; costs a read and one
        ``bytes.split`` per ``CHUNK_BYTES`` (a ``bytes.count`` for a block not
        owned).
        """
        tail, ended = self._seek_lines(start)
        offset, number, chunks = start + ended, start_line, 0
        while True:
            chunk = self._read(CHUNK_BYTES)
            if not chunk:
                break
            if tail:
                chunk = tail + chunk
            if owned is not None and not owned(chunks):
                cut = chunk.rfind(b"\n") + 1
                tail = chunk[cut:]
                offset, number = offset + cut, number + chunk.count(b"\n", 0, cut)
                chunks += 1
                continue
            lines = chunk.split(b"\n")
            tail = lines.pop()
            block = LineBlock(lines, offset, number, chunks, final=False)
            if number == 0 and lines and lines[0].startswith(_BOM):
                lines[0] = lines[0][len(_BOM) :]
                block = LineBlock(lines, offset + len(_BOM), number, chunks, final=False)
            offset += len(chunk) - len(tail)
            number += len(lines)
            chunks += 1
            yield block
        if tail and not tail.isspace():
            if number == 0 and tail.startswith(_BOM):
                tail, offset = tail[len(_BOM) :], offset + len(_BOM)
            try:
                orjson.loads(tail)
            except orjson.JSONDecodeError:
                self.incomplete_tail = len(tail)  # maybe still being written: next run
                return
            if owned is None or owned(chunks):
                yield LineBlock([tail], offset, number, chunks, final=True)

    def _lines(self, start: int, start_line: int, raw: bool) -> Iterator[Item]:
        loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError  # noqa: N806 - local alias
        for block in self.line_blocks(start, start_line):
            offset, number, newline = block.offset, block.number, 0 if block.final else 1
            for line in block.lines:
                number += 1
                offset += len(line) + newline
                if not line or line.isspace():
                    continue
                if raw:
                    yield Item(line, offset, number, "line")
                    continue
                try:
                    yield Item(loads(line), offset, number, "line")
                except JSONDecodeError as exc:
                    yield Item(BadLine.of(line, exc), offset, number, "line")

    def _array(self, start: int) -> Iterator[Item]:
        self._rewind()
        reader = _CountingReader(self)
        index = 0
        try:
            for payload in ijson.items(reader, "item", use_float=True):
                index += 1
                if index > start:
                    yield Item(payload, index, index, "item")
        except ijson.JSONError as exc:
            raise PayloadError(
                f"{self.path}: not a JSON array after item {index - 1} "
                f"(near byte {reader.consumed}): {str(exc).splitlines()[0]}"
            ) from exc
        if self.truncated_gzip:
            raise PayloadError(f"{self.path}: the gzip stream breaks off inside the JSON array")
        if index < start:
            raise PayloadError(
                f"{self.path}: has {index} items, fewer than the {start} already ingested: "
                "it was rewritten since"
            )

    def _document(self, start: int) -> Iterator[Item]:
        self._rewind()
        text = self._read(MAX_DOCUMENT_BYTES + 1)
        while len(text) <= MAX_DOCUMENT_BYTES and (more := self._read(CHUNK_BYTES)):
            text += more
        if len(text) > MAX_DOCUMENT_BYTES:
            raise PayloadError(
                f"{self.path}: a single JSON document larger than {MAX_DOCUMENT_BYTES >> 20} MiB "
                "is not read whole: write it as JSON lines (one payload per line) or as a JSON "
                "array to stream it"
            )
        try:
            document = orjson.loads(text.lstrip(_BOM))
        except orjson.JSONDecodeError as exc:
            raise PayloadError(
                f"{self.path}: not JSON (nor JSON lines): line {exc.lineno} column {exc.colno}: "
                f"{exc.msg}"
            ) from exc
        if start < 1:
            yield Item(document, 1, 1, "document")


class _CountingReader:
    """The source's decompressed stream as a file for ijson, counting bytes consumed."""

    def __init__(self, source: Source) -> None:
        self._source = source
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        if size == 0:  # ijson probes for bytes vs text
            return b""
        data = self._source._read(size if size > 0 else CHUNK_BYTES)
        self.consumed += len(data)
        return data


def identity_digest(head: bytes) -> str:
    """``'sha256:'`` + the hex SHA-256 of ``head`` (a file's leading bytes)."""
    return "sha256:" + hashlib.sha256(head).hexdigest()


class _Capped(io.RawIOBase):
    """A file that ends after its first ``limit`` bytes, whatever is appended to it."""

    def __init__(self, file: io.FileIO, limit: int) -> None:
        self._file, self._limit = file, limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        room = self._limit - self._file.tell()
        if room <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        return self._file.readinto(view[:room]) or 0

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def close(self) -> None:
        self._file.close()
        super().close()


def open_source(path: Path, limit: int | None = None) -> Source:
    """Open ``path`` for streaming (as if it ended after ``limit`` bytes, when given);
    PayloadError when it is missing or unreadable."""
    if not path.is_file():
        raise PayloadError(f"{path}: no such file")
    try:
        return Source(path, limit)
    except OSError as exc:
        raise PayloadError(f"{path}: cannot read: {exc}") from exc
