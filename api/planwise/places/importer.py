"""Bulk import of Google Places API results into `place`, fast and idempotent.

Input: files holding a Nearby/Text Search response (`{"results": [...]}`), a Place Details
response (`{"result": {...}}`), a bare place object, a list of any of these, or JSON Lines
of them (`.jsonl`/`.ndjson`, or any file whose whole text is not one JSON document but
whose first line is). Each place is validated in Python; a bad one is reported as a
`Rejection` (source, line or record number, reason) and skipped, the others are kept.

Speed comes from round trips per batch, not per row, and from overlapping Python with
the server: valid rows stream through `COPY` into a temporary staging table (no WAL, no
indexes); one `INSERT … SELECT … ON CONFLICT (id) DO UPDATE … WHERE … IS DISTINCT FROM …`
per batch merges them, sent in pipeline mode so that the server merges a batch while
Python parses the next. Rows whose content is already stored never reach the upsert (not
even its row locks), so re-importing a file writes nothing and leaves `updated_at` alone.
The last record of a place_id wins: within a batch through `DISTINCT ON (id) … ORDER BY
id, seq DESC`, across batches because they are merged in order. Merged ids are noted in a
second temporary table so that a place touched by several batches is counted once.
Everything is one transaction.

On request (`rebuild_indexes`), the import drops `place`'s cheap-to-build secondary
indexes in that transaction and builds them again before the commit
(`planwise.places.indexes`): readers and writers of `place` wait for the commit meanwhile,
and a failed import rolls the drop back with everything else.

The demo data generator goes through `import_records` too, so it is validated and
merged exactly as real Google data is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any, NamedTuple

import orjson
import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from planwise.db.engine import libpq_url
from planwise.errors import PlanwiseError
from planwise.places.categories import category_for
from planwise.places.indexes import REBUILT_INDEXES, build_indexes, drop_indexes

MAX_ID_LENGTH = 100
MAX_NAME_LENGTH = 200
MAX_TYPES_LENGTH = 500
MAX_OVERVIEW_LENGTH = 2000
"""Google's editorial summaries are a sentence or two; without a limit one 50 MB record
made every `/places` and `/recommendations` answer that included it 52 MB."""
MAX_INT4 = 2**31 - 1
JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson"})
PROGRESS_EVERY = 8192
"""Records between progress updates: often enough to look live, rarely enough to cost ~0."""

BATCH_SIZE = 25_000
"""Staged rows per COPY and merge: large enough that round trips cost nothing, small
enough that parsing the next batch overlaps with most of the merging."""

PLACE_COLUMNS = (
    "id",
    "name",
    "lat",
    "lng",
    "types",
    "category",
    "rating",
    "user_ratings_total",
    "description",
    "opening_hours",
)
_STAGING = sql.Identifier("planwise_place_staging")
_TOUCHED = sql.Identifier("planwise_place_touched")
_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, PLACE_COLUMNS))

# `seq` is the record's position in the import, for last-wins among duplicated ids.
# opening_hours is staged as text: COPY into json would parse every value (about 0.5 s of
# server CPU per 300,000 places), though a re-import then leaves most rows out; the
# upsert casts it for the rows it writes.
CREATE_STAGING = sql.SQL("""
CREATE TEMP TABLE {} (
    seq bigint NOT NULL,
    id text NOT NULL,
    name text NOT NULL,
    lat double precision NOT NULL,
    lng double precision NOT NULL,
    types text,
    category text,
    rating double precision,
    user_ratings_total integer,
    description text,
    opening_hours text
) ON COMMIT DROP
""").format(_STAGING)
CREATE_TOUCHED = sql.SQL("CREATE TEMP TABLE {} (id text, inserted boolean) ON COMMIT DROP").format(
    _TOUCHED
)
MERGE_PLANNING = sql.SQL(
    "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; SET LOCAL jit = off"
)
"""For this transaction only: the merge looks up each staged id in place's primary key. In
the middle of a fresh import the planner, seeing a smallish `place`, would rather hash all
of it for every batch, which makes the import quadratic; and compiling a 25,000-row
statement (JIT) costs more than it saves."""
COPY_STAGING = sql.SQL("COPY {} (seq, {}) FROM STDIN").format(_STAGING, _COLUMNS)
TRUNCATE_STAGING = sql.SQL("TRUNCATE {}").format(_STAGING)
DROP_TEMPORARY = sql.SQL("DROP TABLE {}, {}").format(_STAGING, _TOUCHED)


def _compared(table: str, json_as: str = "jsonb") -> sql.Composed:
    """The row's content columns; json has no equality operator, so opening_hours is
    compared as `json_as`: jsonb (equal content) or text (the same text, much cheaper)."""
    return sql.SQL(", ").join(
        sql.SQL("{}.{}{}").format(
            sql.Identifier(table),
            sql.Identifier(column),
            sql.SQL(f"::{json_as}" if column == "opening_hours" else ""),
        )
        for column in PLACE_COLUMNS[1:]
    )


def _merge(source: str) -> sql.Composed:
    """Upsert the staged rows that `source` picks; note each touched id and how.

    Rows whose content is already stored are left out before the upsert: ON CONFLICT DO
    UPDATE locks every conflicting row, even one its WHERE then skips, and a lock is a
    write (the tuple's xmax, a WAL record, a dirty page), so a re-import of unchanged data
    would rewrite the whole table. That filter compares opening_hours as text (parsing JSON
    twice per row costs more than the rest of the comparison); the upsert's own WHERE, on
    jsonb, catches what differs only in JSON spelling (and rows changed meanwhile by
    someone else): no write, no updated_at bump for content that is equal after all.
    `xmax = 0` tells a freshly inserted row from an updated one (an update stamps the
    updating transaction into the old tuple's xmax, which RETURNING sees on the new one).
    """
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column)) for column in PLACE_COLUMNS[1:]
    )
    return sql.SQL("""
WITH merged AS (
    INSERT INTO place AS p ({columns})
    SELECT {inserted} FROM ({source}) AS incoming
    WHERE NOT EXISTS (
        SELECT FROM place AS stored
        WHERE stored.id = incoming.id AND ({stored}) IS NOT DISTINCT FROM ({incoming})
    )
    ON CONFLICT (id) DO UPDATE SET {updates}
    WHERE ({old}) IS DISTINCT FROM ({new})
    RETURNING id, xmax = 0 AS inserted
)
INSERT INTO {touched} (id, inserted) SELECT id, inserted FROM merged
""").format(
        columns=_COLUMNS,
        inserted=sql.SQL(", ").join(
            sql.SQL("{}::json" if column == "opening_hours" else "{}").format(
                sql.Identifier(column)
            )
            for column in PLACE_COLUMNS
        ),
        source=sql.SQL(source).format(columns=_COLUMNS, staging=_STAGING),
        stored=_compared("stored", json_as="text"),
        incoming=_compared("incoming", json_as="text"),
        updates=updates,
        old=_compared("p"),
        new=_compared("excluded"),
        touched=_TOUCHED,
    )


MERGE_STAGING = _merge("SELECT {columns} FROM {staging}")
MERGE_STAGING_LAST_WINS = _merge(
    "SELECT DISTINCT ON (id) {columns} FROM {staging} ORDER BY id, seq DESC"
)
"""For a batch with a repeated id: ON CONFLICT cannot touch one row twice in a statement,
and the record read last must win. Batches without repeats skip the sort."""

# An id is inserted at most once per import; any other touch of it is an update.
_COUNT_TOUCHED = """
SELECT count(*) FILTER (WHERE inserted), count({distinct}id) - count(*) FILTER (WHERE inserted)
FROM {touched}
"""
COUNT_TOUCHED = sql.SQL(_COUNT_TOUCHED).format(distinct=sql.SQL(""), touched=_TOUCHED)
COUNT_TOUCHED_DISTINCT = sql.SQL(_COUNT_TOUCHED).format(
    distinct=sql.SQL("DISTINCT "), touched=_TOUCHED
)
"""When some id was met twice it may have been touched by two batches."""


class Rejection(NamedTuple):
    """A record that was not imported.

    `line` is the 1-based line in a JSON Lines file, or the 1-based record number in a
    JSON document (its places in order, after expanding search responses).
    """

    source: str
    line: int
    reason: str


class SourceRecord(NamedTuple):
    """One place object (as Google returns it) and where it came from."""

    source: str
    line: int
    place: object
    label: str = ""
    """Which of several places on one line (`place 3 on the line`), for rejections."""


@dataclass
class ImportReport:
    read: int = 0
    """Place records seen, rejected ones included."""
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: int = 0
    """Valid records superseded by a later record with the same place_id."""
    rejected: list[Rejection] = field(default_factory=list)
    seconds: float = 0.0
    rebuilt_indexes: tuple[str, ...] = ()
    """Secondary indexes dropped for the load and built again before the commit."""
    index_seconds: float = 0.0
    """Of `seconds`, building them."""

    @property
    def imported(self) -> int:
        return self.inserted + self.updated

    @property
    def rate(self) -> float:
        """Records read per second, end to end (parsing, COPY and merge)."""
        return self.read / self.seconds if self.seconds > 0 else 0.0


class RecordError(ValueError):
    """Why one record cannot be imported; its message is the rejection reason."""


# -- one place object → one staging row ---------------------------------------------------


def _text(value: object, what: str, limit: int | None, *, required: bool) -> str | None:
    if value is None:
        if required:
            raise RecordError(f"missing {what}")
        return None
    if not isinstance(value, str):
        raise RecordError(f"{what} is not a string")
    if required and not value.strip():
        raise RecordError(f"empty {what}")
    if limit is not None and len(value) > limit:
        raise RecordError(f"{what} longer than {limit} characters ({len(value)})")
    if "\x00" in value:
        raise RecordError(f"{what} contains a NUL character")
    return value


def _number(value: object, what: str, low: float, high: float) -> float:
    # bool is an int subclass: `true` is not a coordinate.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordError(f"{what} is not a number: {value!r:.40}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise RecordError(f"{what} {value!r} out of range {low:g}..{high:g}")
    return number


def _types(types: object) -> str:
    """The comma-joined types; raises RecordError if they cannot be joined unambiguously."""
    if type(types) is not list:
        raise RecordError("types is not a list of strings")
    try:
        joined = ",".join(types)
    except TypeError:
        raise RecordError("types is not a list of strings") from None
    if joined.count(",") != len(types) - 1:
        raise RecordError("a type contains a comma")
    _text(joined, "types (joined)", MAX_TYPES_LENGTH, required=False)
    return joined


_category_cache: dict[str, str | None] = {}
"""category_for by joined types: a crawl repeats a few hundred combinations endlessly."""


def place_row(place: object) -> tuple[Any, ...]:
    """Validate a Google place object; the staging row without its seq, in PLACE_COLUMNS order.

    Raises RecordError with the reason when the place cannot be imported. Each field has
    a fast inline check for the common valid case; the helpers find the reason otherwise.
    """
    if type(place) is not dict:
        raise RecordError("not a JSON object")
    get = place.get

    place_id = get("place_id")
    if not (type(place_id) is str and 0 < len(place_id) <= MAX_ID_LENGTH
            and "\x00" not in place_id and not place_id.isspace()):  # fmt: skip
        _text(place_id, "place_id", MAX_ID_LENGTH, required=True)
    name = get("name")
    if not (type(name) is str and 0 < len(name) <= MAX_NAME_LENGTH
            and "\x00" not in name and not name.isspace()):  # fmt: skip
        _text(name, "name", MAX_NAME_LENGTH, required=True)

    try:
        location = place["geometry"]["location"]
        lat = location["lat"]
        lng = location["lng"]
    except (KeyError, TypeError):
        raise RecordError("missing geometry.location.lat/lng") from None
    if not (type(lat) is float and -90.0 <= lat <= 90.0):
        lat = _number(lat, "geometry.location.lat", -90.0, 90.0)
    if not (type(lng) is float and -180.0 <= lng <= 180.0):
        lng = _number(lng, "geometry.location.lng", -180.0, 180.0)

    types = get("types")
    types_text = category = None
    if types is not None:
        types_text = _types(types)
        try:
            category = _category_cache[types_text]
        except KeyError:
            category = category_for(types)
            if len(_category_cache) < 100_000:
                _category_cache[types_text] = category

    rating = get("rating")
    if rating is not None and not (type(rating) is float and 0.0 <= rating <= 5.0):
        rating = _number(rating, "rating", 0.0, 5.0)

    total = get("user_ratings_total")
    if total is not None and not (type(total) is int and 0 <= total <= MAX_INT4):
        if type(total) is float and total.is_integer():
            total = int(total)
        if type(total) is not int or not 0 <= total <= MAX_INT4:
            raise RecordError(f"user_ratings_total is not a count: {total!r:.40}")

    description = None
    summary = get("editorial_summary")
    if summary is not None:
        if type(summary) is not dict:
            raise RecordError("editorial_summary is not an object")
        description = _text(summary.get("overview"), "editorial_summary.overview",
                            MAX_OVERVIEW_LENGTH, required=False)  # fmt: skip

    hours = get("opening_hours")
    if hours is not None:
        if type(hours) is not dict:
            raise RecordError("opening_hours is not an object")
        hours = orjson.dumps(hours).decode()
        if "\\u0000" in hours:
            raise RecordError("opening_hours contains a NUL character")

    return (place_id, name, lat, lng, types_text, category, rating, total, description, hours)


# -- staging and merging -------------------------------------------------------------------


class _Batches:
    """Validated staging rows, a batch at a time; rejections go to `rejected`."""

    def __init__(
        self, records: Iterable[SourceRecord | Rejection], rejected: list[Rejection]
    ) -> None:
        self._records = iter(records)
        self._rejected = rejected
        self.ids: set[str] = set()
        self.read = 0
        self.staged = 0
        self.repeated = False
        """Some id was met twice (in one batch or across batches)."""

    def next(self, size: int) -> tuple[list[tuple[Any, ...]], bool]:
        """Up to `size` rows (seq first) and whether an id among them was met before."""
        rows: list[tuple[Any, ...]] = []
        append, ids, rejected = rows.append, self.ids, self._rejected
        read, repeats = self.read, False
        for record in self._records:
            read += 1
            if isinstance(record, Rejection):
                rejected.append(record)
                continue
            try:
                row = place_row(record.place)
            except RecordError as error:
                reason = f"{record.label}: {error}" if record.label else str(error)
                rejected.append(Rejection(record.source, record.line, reason))
                continue
            if row[0] in ids:
                repeats = True
            else:
                ids.add(row[0])
            append((read, *row))
            if len(rows) == size:
                break
        self.read = read
        self.staged += len(rows)
        self.repeated = self.repeated or repeats
        return rows, repeats


def import_records(
    conn: psycopg.Connection[Any],
    records: Iterable[SourceRecord | Rejection],
    *,
    batch_size: int = BATCH_SIZE,
    rebuild_indexes: bool = False,
    rebuilt: tuple[str, ...] = REBUILT_INDEXES,
) -> ImportReport:
    """Stage and merge place records in the connection's current transaction.

    `records` may carry Rejections found while reading (invalid JSON): they are counted
    and reported. `rebuild_indexes`: drop the `rebuilt` indexes first and build them again
    at the end, in this transaction. The caller commits (or rolls back: nothing is kept
    then, the indexes included).
    """
    started = perf_counter()
    report = ImportReport()
    batches = _Batches(records, report.rejected)
    dropped = drop_indexes(conn, rebuilt) if rebuild_indexes else {}
    with conn.cursor() as cursor:
        cursor.execute(MERGE_PLANNING)
        cursor.execute(CREATE_STAGING)
        cursor.execute(CREATE_TOUCHED)
        rows, repeats = batches.next(batch_size)
        while rows:
            with cursor.copy(COPY_STAGING) as copy:
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
            # Pipeline mode sends the merge at once and waits only when the block ends:
            # meanwhile Python reads and validates the next batch.
            with conn.pipeline():
                cursor.execute(MERGE_STAGING_LAST_WINS if repeats else MERGE_STAGING)
                cursor.execute(TRUNCATE_STAGING)
                rows, repeats = batches.next(batch_size)
        if dropped:
            index_started = perf_counter()
            build_indexes(conn, dropped)
            report.rebuilt_indexes = tuple(dropped)
            report.index_seconds = perf_counter() - index_started
        cursor.execute(COUNT_TOUCHED_DISTINCT if batches.repeated else COUNT_TOUCHED)
        counts = cursor.fetchone()
        cursor.execute(DROP_TEMPORARY)
    assert counts is not None
    report.read = batches.read
    report.inserted, report.updated = (int(count) for count in counts)
    report.unchanged = len(batches.ids) - report.inserted - report.updated
    report.duplicates = batches.staged - len(batches.ids)
    report.seconds = perf_counter() - started
    return report


# -- reading files -------------------------------------------------------------------------


def _expand(value: object) -> list[tuple[object, str]]:
    """The places in one parsed JSON value (a response, a place, or a list of them), each
    with its label; a RecordError stands in for an element that holds no place."""
    places: list[tuple[object, str]] = []
    for element in value if type(value) is list else [value]:
        if type(element) is not dict:
            places.append((element, ""))  # place_row rejects it: "not a JSON object"
        elif "results" in element:
            results = element["results"]
            if type(results) is list:
                places.extend((place, "") for place in results)
            else:
                places.append((RecordError("`results` is not a list"), ""))
        elif "result" in element:
            places.append((element["result"], ""))
        elif "status" in element and "place_id" not in element:
            detail = element.get("error_message", "no results")
            error = RecordError(f"API response with status {element['status']!r}: {detail}")
            places.append((error, ""))
        else:
            places.append((element, ""))
    if len(places) > 1:
        places = [(place, f"place {n} on the line") for n, (place, _) in enumerate(places, 1)]
    return places


def _invalid_json(
    source: str, error: orjson.JSONDecodeError, data: bytes, line: int = 0
) -> Rejection:
    return Rejection(source, line or error.lineno, _why_unparseable(error, data))


def _why_unparseable(error: orjson.JSONDecodeError, data: bytes) -> str:
    """orjson's reason, or, for bytes that are not UTF-8, where the first bad byte is
    (orjson calls that "str is not valid UTF-8", as if it were a JSON error)."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8: byte 0x{data[bad.start]:02x} at offset {bad.start}"
    return f"invalid JSON: {error.msg}"


def _read_lines(
    source: str, lines: Iterable[bytes], advance: Callable[[int], None] | None
) -> Iterator[SourceRecord | Rejection]:
    pending = 0
    for number, line in enumerate(lines, 1):
        pending += len(line)
        if advance is not None and number % PROGRESS_EVERY == 0:
            advance(pending)
            pending = 0
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            yield _invalid_json(source, error, line, number)
            continue
        if type(value) is dict and "place_id" in value:  # the common case, fast
            yield SourceRecord(source, number, value)
            continue
        for place, label in _expand(value):
            if type(place) is RecordError:
                reason = f"{label}: {place}" if label else str(place)
                yield Rejection(source, number, reason)
            else:
                yield SourceRecord(source, number, place, label)
    if advance is not None:
        advance(pending)


def read_file(
    path: Path, advance: Callable[[int], None] | None = None
) -> Iterator[SourceRecord | Rejection]:
    """The place records of one file; `advance(n)` is told of each n bytes consumed."""
    source = str(path)
    try:
        if path.suffix.lower() in JSON_LINES_SUFFIXES:
            with path.open("rb") as lines:
                yield from _read_lines(source, lines, advance)
            return
        data = path.read_bytes()
    except OSError as error:
        raise PlanwiseError(f"cannot read {source}: {error.strerror or error}") from None
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        first_line = data.lstrip().split(b"\n", 1)[0]
        try:
            looks_like_lines = isinstance(orjson.loads(first_line), dict | list)
        except orjson.JSONDecodeError:
            looks_like_lines = False
        if not looks_like_lines:  # not one record could be read: the file is unreadable
            raise PlanwiseError(
                f"cannot read {source}: {_why_unparseable(error, data)} "
                f"(line {error.lineno}, column {error.colno}); nothing imported"
            ) from None
        yield from _read_lines(source, data.splitlines(keepends=True), advance)
        return
    if advance is not None:
        advance(len(data))
    for number, (place, _label) in enumerate(_expand(document), 1):
        if type(place) is RecordError:
            yield Rejection(source, number, str(place))
        else:
            yield SourceRecord(source, number, place)


# -- the command's entry point -------------------------------------------------------------


class _RowsPerSecond(ProgressColumn):
    """Records read so far and the rate, from the task's `rows` field."""

    def render(self, task: Task) -> Text:
        rows = int(task.fields.get("rows", 0))
        elapsed = task.elapsed or 0.0
        rate = rows / elapsed if elapsed > 0 else 0.0
        return Text(f"{rows:,} places  {rate:,.0f}/s", style="progress.data.speed")


def _progress_bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        _RowsPerSecond(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def import_places(
    admin_url: str,
    paths: list[Path],
    progress: bool = True,
    rebuild_indexes: bool = False,
    announce: Callable[[str], None] | None = None,
) -> ImportReport:
    """Import the files in one transaction as the owner (who may write `place`).

    `rebuild_indexes`: see `import_records`; `announce` is told first what it means (who
    waits, until when). Raises PlanwiseError, before touching the database, if a file is
    missing.
    """
    for path in paths:
        if not path.is_file():
            problem = "not a regular file" if path.exists() else "no such file"
            raise PlanwiseError(f"{problem}: {path}")
    total_bytes = sum(path.stat().st_size for path in paths)
    bar = _progress_bar(Console(stderr=True)) if progress else None

    with psycopg.connect(libpq_url(admin_url), application_name="planwise-import") as conn:
        if rebuild_indexes and announce is not None:
            announce(REBUILD_NOTICE)
        with bar if bar is not None else nullcontext():
            report = _import_files(conn, paths, bar, total_bytes, rebuild_indexes)
        conn.commit()
    return report


REBUILD_NOTICE = (
    "place's indexes idx_place_location and idx_place_category are dropped for this import "
    "and built again before the commit: until then readers and writers of place wait"
)


def _import_files(
    conn: psycopg.Connection[Any],
    paths: list[Path],
    bar: Progress | None,
    total_bytes: int,
    rebuild_indexes: bool,
) -> ImportReport:
    # Sorts (a batch's DISTINCT ON, the final distinct count) stay in memory.
    conn.execute("SET LOCAL work_mem = '64MB'")
    if bar is None:
        records: Iterable[SourceRecord | Rejection] = (
            record for path in paths for record in read_file(path)
        )
        return import_records(conn, records, rebuild_indexes=rebuild_indexes)
    task = bar.add_task("reading", total=total_bytes or 1, rows=0)

    def advance(size: int) -> None:
        bar.advance(task, size)

    def tracked() -> Iterator[SourceRecord | Rejection]:
        count = 0
        for path in paths:
            for record in read_file(path, advance):
                count += 1
                if count % PROGRESS_EVERY == 0:
                    bar.update(task, rows=count)
                yield record
        bar.update(task, rows=count, completed=total_bytes or 1, description="merging")

    report = import_records(conn, tracked(), rebuild_indexes=rebuild_indexes)
    bar.update(task, description="done")
    return report
