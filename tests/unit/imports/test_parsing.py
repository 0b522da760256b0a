"""Reading import files fed in pieces: records, line numbers, resume positions, whole-file errors."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.imports.parsing import (
    START,
    CsvReader,
    FileUnreadable,
    JsonLinesReader,
    Position,
    Record,
    RecordReader,
    columns_of,
    neutralised,
    reader_for,
    unneutralised,
)

HEADER = "email,name,locale,timezone,tags,consent_source,consent_at,attr.city\n"


def read_all(
    reader: RecordReader, data: bytes, piece: int | None = None, *, start: Position = START
) -> list[Record]:
    """Feed `data` as chunks of `piece` bytes (each a chunk of the stored file) and read all."""
    size = piece or max(len(data), 1)
    chunks = [data[i : i + size] for i in range(0, len(data), size)]
    records: list[Record] = []
    index = start.chunk
    first = True
    while True:
        record = reader.next_record()
        if record is not None:
            records.append(record)
            continue
        if reader.finished:
            return records
        if index >= len(chunks):
            reader.close()
            continue
        offset = start.offset if first else 0
        reader.feed(chunks[index][offset:], chunk=index, offset=offset)
        first = False
        index += 1


def test_csv_rows_map_columns_and_leave_empty_cells_out() -> None:
    data = (
        HEADER
        + "lan@example.com,Nguyễn Thị Lan,vi,,vip;áo dài,popup,2026-11-19T10:00:00+07:00,Huế\n"
    ).encode()
    records = read_all(CsvReader(), data)
    assert records == [
        Record(
            line=2,
            end=Position(0, len(data), 3),
            values={
                "email": "lan@example.com",
                "name": "Nguyễn Thị Lan",
                "locale": "vi",
                "tags": "vip;áo dài",
                "consent_source": "popup",
                "consent_at": "2026-11-19T10:00:00+07:00",
                "attr.city": "Huế",
            },
        )
    ]


def test_bom_crlf_blank_rows_and_missing_final_newline() -> None:
    data = '\ufeffEmail , Name\r\na@example.com,An\r\n\r\n,\r\nb@example.com,"Bình"'.encode()
    records = read_all(CsvReader(), data)
    assert [(r.line, r.values) for r in records] == [
        (2, {"email": "a@example.com", "name": "An"}),
        (5, {"email": "b@example.com", "name": "Bình"}),
    ]
    assert records[-1].end == Position(0, len(data), 6)


def test_quoted_multiline_field_counts_physical_lines() -> None:
    data = (
        'email,name,attr.note\na@example.com,"An\nNguyễn","line one\r\nline ""two"""\nb@example.com,B,x\n'
    ).encode()
    records = read_all(CsvReader(), data)
    assert [(r.line, r.values) for r in records] == [
        (
            2,
            {"email": "a@example.com", "name": "An\nNguyễn", "attr.note": 'line one\r\nline "two"'},
        ),
        (5, {"email": "b@example.com", "name": "B", "attr.note": "x"}),
    ]


@pytest.mark.parametrize("piece", [1, 2, 3, 5, 7, 64])
def test_any_chunking_gives_the_same_records(piece: int) -> None:
    data = (
        HEADER
        + 'a@example.com,"Trần\nVăn, ""A""",vi,Asia/Ho_Chi_Minh,x;y,,,"Đà\r\nNẵng"\n'
        + "b@example.com,Bé,,,,,,\n"
    ).encode()
    whole = read_all(CsvReader(), data)
    assert len(whole) == 2
    assert [(r.line, r.values, r.problem) for r in read_all(CsvReader(), data, piece)] == [
        (r.line, r.values, r.problem) for r in whole
    ]


@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ab\"',\n\r;éữ ", max_size=12),
            st.text(alphabet='xyz"\n,ố', max_size=8),
        ),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=1, max_value=40),
)
def test_resuming_at_any_record_end_reads_the_rest_identically(
    rows: list[tuple[str, str]], piece: int
) -> None:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["email", "name"])
    for index, (name, note) in enumerate(rows):
        writer.writerow([f"p{index}@example.com", name + note])
    data = buffer.getvalue().encode()
    whole = read_all(CsvReader(), data, piece)
    columns = ("email", "name")
    for cut, record in enumerate(whole):
        rest = read_all(CsvReader(record.end, columns), data, piece, start=record.end)
        assert [(r.line, r.values) for r in rest] == [(r.line, r.values) for r in whole[cut + 1 :]]


def test_row_problems_do_not_stop_the_file() -> None:
    data = b"email,name\n" + b"a@example.com,\xff\xfe\n" + b'b@example.com,"open\n' + b"x,y,z\n"
    records = read_all(CsvReader(), data + b"c@example.com,C\n")
    assert len(records) == 2
    assert (records[0].line, records[0].problem) == (2, "not valid UTF-8")
    # An unterminated quote swallows the rest of the file: one problem at its first line.
    assert records[1].line == 3
    assert records[1].problem is not None
    assert "CSV" in records[1].problem


def test_extra_cells_are_a_row_problem_unless_empty() -> None:
    data = b"email,name\na@example.com,A,,\nb@example.com,B,surplus\n"
    records = read_all(CsvReader(), data)
    assert records[0].values == {"email": "a@example.com", "name": "A"}
    assert records[1].values is None
    assert records[1].problem == "3 fields, but the header has 2"


def test_too_long_line_is_one_problem_and_reading_goes_on() -> None:
    long_line = b"a@example.com," + b"x" * (1 << 20) + b"\n"
    data = b"email,name\n" + long_line + b"b@example.com,B\n"
    records = read_all(CsvReader(), data, 300_000)
    assert [(r.line, r.values is None) for r in records] == [(2, True), (3, False)]
    assert records[0].problem is not None
    assert "longer than" in records[0].problem


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"\n\n", "The file is empty"),
        (b"name,tags\nAn,x\n", "no email column"),
        (b"email,phone\n", "Unknown column 'phone'"),
        (b"email,Email\n", "appears twice"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "cannot be read"),
        (b"x" * ((1 << 20) + 10), "cannot be read"),
    ],
)
def test_unreadable_csv_files(data: bytes, message: str) -> None:
    with pytest.raises(FileUnreadable, match=message):
        read_all(CsvReader(), data, 4096)


def test_header_names_are_case_insensitive_and_attributes_keep_their_case() -> None:
    assert columns_of([" EMAIL", "Name", "ATTR. Thành phố ", ""]) == (
        "email",
        "name",
        "attr.Thành phố",
        "",
    )


def test_jsonl_records_blank_lines_and_row_problems() -> None:
    lines = [
        json.dumps({"email": "a@example.com", "tags": ["x"], "attributes": {"k": 1}}),
        "",
        "   ",
        "{not json",
        "[1, 2]",
        json.dumps({"email": "b@example.com", "name": "Bình"}, ensure_ascii=False),
    ]
    data = ("\ufeff" + "\r\n".join(lines)).encode()
    records = read_all(JsonLinesReader(), data, 3)
    assert [(r.line, r.values, r.problem) for r in records] == [
        (1, {"email": "a@example.com", "tags": ["x"], "attributes": {"k": 1}}, None),
        (4, None, "not valid JSON: Expecting property name enclosed in double quotes (column 2)"),
        (5, None, "each line must be a JSON object"),
        (6, {"email": "b@example.com", "name": "Bình"}, None),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\n \n", "empty"),
        (b"\x00\x01\x02garbage\n", "not JSON Lines"),
        (b"email,name\n", "not JSON Lines"),
        (b"\xff\xfe{}\n", "not JSON Lines"),
    ],
)
def test_unreadable_jsonl_files(data: bytes, message: str) -> None:
    with pytest.raises(FileUnreadable, match=message):
        read_all(JsonLinesReader(), data)


def test_jsonl_resume_skips_the_first_line_check() -> None:
    data = b'{"email": "a@example.com"}\nnot json\n{"email": "b@example.com"}\n'
    whole = read_all(reader_for("jsonl"), data)
    rest = read_all(reader_for("jsonl", whole[0].end), data, start=whole[0].end)
    assert [(r.line, r.problem is None) for r in rest] == [(2, False), (3, True)]


@given(st.text(max_size=20))
def test_neutralising_round_trips_and_defuses_formulas(value: str) -> None:
    cell = neutralised(value)
    assert unneutralised(cell) == value
    assert not cell or cell[0] not in "=+-@\t\r"


def test_a_leading_quote_is_dropped_only_before_a_formula_character() -> None:
    assert neutralised("-Lan") == "'-Lan"
    assert unneutralised("'=SUM(A1)") == "=SUM(A1)"
    assert unneutralised("'Connor") == "'Connor"
    assert unneutralised("'") == "'"
