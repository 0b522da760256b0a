"""Reading an uploaded file record by record while it is fed in pieces (sans-I/O: no I/O here).

The file is stored as numbered chunks. A `Position` names a place in it (chunk, byte offset) and
the number of the physical line that starts there, so processing can stop after any record and
resume exactly there later, in whichever process resumes it.

Lines are split on the byte `\\n` before decoding: it never occurs inside a UTF-8 sequence, so byte
offsets stay exact and a bad byte spoils one record, not the rest of the file. CSV records are
parsed by the `csv` module; a quoted field may span lines and chunks (a record cut by the end of
the data fed so far is parsed again from its first line once more data arrives).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from typing import Final, Literal, Protocol

Format = Literal["csv", "jsonl"]
FORMATS: Final[tuple[Format, ...]] = ("csv", "jsonl")
MAX_LINE_BYTES: Final = 1 << 20
FIXED_COLUMNS: Final = (
    "email", "name", "locale", "timezone", "tags", "consent_source", "consent_at",
)  # fmt: skip
ATTRIBUTE_PREFIX: Final = "attr."
# Cells that spreadsheets run as formulas (OWASP "CSV injection"). Exports prefix them, and cells
# starting with a quote, with one quote; imports drop that quote, so the round trip is exact.
FORMULA_TRIGGERS: Final = frozenset("=+-@\t\r")
_QUOTED: Final = FORMULA_TRIGGERS | {"'"}
_IGNORED: Final = ""
_COMPACT_AFTER: Final = 2048


@dataclass(frozen=True)
class Position:
    chunk: int
    offset: int
    line: int


START: Final = Position(0, 0, 1)


@dataclass(frozen=True)
class Record:
    """One row of the file: `values` maps column (or JSON key) to value, or `problem` says why
    the row could not be read. `line` is the physical line where it starts (a CSV header is 1)."""

    line: int
    end: Position
    values: dict[str, object] | None
    problem: str | None = None


class FileUnreadable(ValueError):
    """The file as a whole cannot be read: not text, no usable header, not JSON Lines."""


class RecordReader(Protocol):
    finished: bool

    def feed(self, data: bytes, *, chunk: int, offset: int = 0) -> None: ...

    def close(self) -> None: ...

    def next_record(self) -> Record | None:
        """The next record, or None when more data is needed (or, once `finished`, none is left).

        Raises `FileUnreadable` when the file cannot be read at all."""
        ...


def neutralised(cell: str) -> str:
    return "'" + cell if cell and cell[0] in _QUOTED else cell


def unneutralised(cell: str) -> str:
    return cell[1:] if len(cell) > 1 and cell[0] == "'" and cell[1] in _QUOTED else cell


@dataclass(frozen=True)
class _Line:
    text: str
    number: int
    end: Position
    valid: bool
    too_long: bool = False


class _Lines:
    """Splits bytes into decoded lines that keep their line endings (the csv module needs them)."""

    def __init__(self, start: Position) -> None:
        self.items: list[_Line] = []
        self.closed = False
        self._number = start.line
        self._pending = bytearray()
        self._pending_end = (start.chunk, start.offset)
        self._skipping = False

    def feed(self, data: bytes, *, chunk: int, offset: int) -> None:
        pieces = data.split(b"\n")
        last = pieces.pop()
        position = offset
        for piece in pieces:
            position += len(piece) + 1
            self._line(piece, chunk, position, newline=True)
        self._pending_end = (chunk, position + len(last))
        if self._skipping:
            return
        if len(self._pending) + len(last) > MAX_LINE_BYTES:
            self._pending.clear()
            self._skipping = True
        else:
            self._pending += last

    def close(self) -> None:
        if self._pending or self._skipping:
            chunk, offset = self._pending_end
            self._line(b"", chunk, offset, newline=False)
        self.closed = True

    def _line(self, piece: bytes, chunk: int, offset: int, *, newline: bool) -> None:
        number = self._number
        self._number += 1
        end = Position(chunk, offset, self._number)
        if self._skipping or len(self._pending) + len(piece) > MAX_LINE_BYTES:
            self._pending.clear()
            self._skipping = False
            self.items.append(_Line("", number, end, valid=True, too_long=True))
            return
        raw = bytes(self._pending + piece) if self._pending else piece
        self._pending.clear()
        valid = True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "surrogateescape")
            valid = False
        if number == 1 and text.startswith("\ufeff"):
            text = text[1:]
        self.items.append(_Line(text + "\n" if newline else text, number, end, valid))

    def compact(self, upto: int) -> None:
        del self.items[:upto]


class _NeedData(Exception):
    pass


class _LineTooLong(Exception):
    pass


class _Feed:
    """What `csv.reader` iterates: buffered lines from `index`; running dry raises `_NeedData`
    (not StopIteration, which the csv module would take for the end of the file)."""

    def __init__(self, lines: _Lines) -> None:
        self.lines = lines
        self.index = 0

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        items = self.lines.items
        if self.index < len(items):
            line = items[self.index]
            self.index += 1
            if line.too_long:
                raise _LineTooLong
            return line.text
        if self.lines.closed:
            raise StopIteration
        raise _NeedData


def columns_of(cells: list[str]) -> tuple[str, ...]:
    """Header cells to column keys: fixed names (any case), `attr.<name>`, or ignored if empty."""
    keys: list[str] = []
    for cell in cells:
        name = cell.strip()
        lowered = name.lower()
        if not name:
            keys.append(_IGNORED)
            continue
        if lowered in FIXED_COLUMNS:
            key = lowered
        elif lowered.startswith(ATTRIBUTE_PREFIX):
            key = ATTRIBUTE_PREFIX + name[len(ATTRIBUTE_PREFIX) :].strip()
        else:
            raise FileUnreadable(
                f"Unknown column {name!r} in the header; the columns are "
                f"{', '.join(FIXED_COLUMNS)} and attr.<name>"
            )
        if key in keys:
            raise FileUnreadable(f"The column {name!r} appears twice in the header")
        keys.append(key)
    if "email" not in keys:
        raise FileUnreadable("The header has no email column")
    return tuple(keys)


class CsvReader:
    def __init__(self, start: Position = START, columns: tuple[str, ...] | None = None) -> None:
        self._lines = _Lines(start)
        self._feed = _Feed(self._lines)
        self._csv = csv.reader(self._feed, strict=True)
        self.columns = columns
        self.finished = False

    def feed(self, data: bytes, *, chunk: int, offset: int = 0) -> None:
        self._lines.feed(data, chunk=chunk, offset=offset)

    def close(self) -> None:
        self._lines.close()

    def read_header(self) -> bool:
        """Whether the header is read (False: feed more). Raises `FileUnreadable`."""
        while self.columns is None:
            raw = self._next_raw()
            if raw is None:
                if self.finished:
                    raise FileUnreadable("The file is empty")
                return False
            line, _, cells, problem = raw
            if problem is not None:
                raise FileUnreadable(f"The header (line {line}) cannot be read: {problem}")
            assert cells is not None
            if any(cell.strip() for cell in cells):
                self.columns = columns_of(cells)
        return True

    def next_record(self) -> Record | None:
        if not self.read_header():
            return None
        columns = self.columns
        assert columns is not None
        while True:
            raw = self._next_raw()
            if raw is None:
                return None
            line, end, cells, problem = raw
            if problem is not None:
                return Record(line, end, None, problem)
            assert cells is not None
            values: dict[str, object] = {}
            for key, cell in zip(columns, cells, strict=False):
                if key and cell and not cell.isspace():
                    values[key] = unneutralised(cell)
            extra = cells[len(columns) :]
            if any(cell.strip() for cell in extra):
                return Record(
                    line, end, None, f"{len(cells)} fields, but the header has {len(columns)}"
                )
            if values:
                return Record(line, end, values)
            if any(cell.strip() for cell in cells):
                # Only ignored (unnamed) columns hold something.
                return Record(line, end, {})

    def _next_raw(self) -> tuple[int, Position, list[str] | None, str | None] | None:
        feed = self._feed
        if feed.index > _COMPACT_AFTER:
            self._lines.compact(feed.index)
            feed.index = 0
        mark = feed.index
        cells: list[str] | None = None
        problem: str | None = None
        try:
            cells = next(self._csv)
        except _NeedData:
            feed.index = mark
            return None
        except StopIteration:
            self.finished = True
            return None
        except _LineTooLong:
            problem = f"a line longer than {MAX_LINE_BYTES} bytes"
        except csv.Error as exc:
            problem = f"not valid CSV: {exc}"
        consumed = self._lines.items[mark : feed.index]
        if not consumed:  # pragma: no cover - the csv module raises only after reading a line
            self.finished = True
            return None
        if problem is None and not all(line.valid for line in consumed):
            cells, problem = None, "not valid UTF-8"
        return consumed[0].number, consumed[-1].end, cells, problem


class JsonLinesReader:
    def __init__(self, start: Position = START) -> None:
        self._lines = _Lines(start)
        self._index = 0
        self._checked = start != START
        self.finished = False

    def feed(self, data: bytes, *, chunk: int, offset: int = 0) -> None:
        self._lines.feed(data, chunk=chunk, offset=offset)

    def close(self) -> None:
        self._lines.close()

    def next_record(self) -> Record | None:
        items = self._lines.items
        while True:
            if self._index >= len(items):
                self._lines.compact(self._index)
                self._index = 0
                if self._lines.closed:
                    self.finished = True
                    if not self._checked:
                        raise FileUnreadable("The file is empty")
                return None
            line = items[self._index]
            self._index += 1
            text = line.text.strip()
            if not text and not line.too_long:
                continue
            if not self._checked:
                self._check_first(line, text)
            return _json_record(line, text)

    def _check_first(self, line: _Line, text: str) -> None:
        # Binary or other files are refused as a whole; a typo in a later line is that row's error.
        if line.too_long or not line.valid or not text.startswith("{"):
            raise FileUnreadable(
                f"The file is not JSON Lines (UTF-8 text, one JSON object per line): "
                f"line {line.number} does not start a JSON object"
            )
        self._checked = True


def _json_record(line: _Line, text: str) -> Record:
    if line.too_long:
        return Record(line.number, line.end, None, f"a line longer than {MAX_LINE_BYTES} bytes")
    if not line.valid:
        return Record(line.number, line.end, None, "not valid UTF-8")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(
            line.number, line.end, None, f"not valid JSON: {exc.msg} (column {exc.colno})"
        )
    if not isinstance(value, dict):
        return Record(line.number, line.end, None, "each line must be a JSON object")
    return Record(line.number, line.end, value)


def reader_for(
    file_format: Format, start: Position = START, columns: tuple[str, ...] | None = None
) -> RecordReader:
    if file_format == "csv":
        return CsvReader(start, columns)
    return JsonLinesReader(start)
