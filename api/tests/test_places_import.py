"""The Google Places importer against a real database: shapes, mapping, rejects,
idempotency, last-wins duplicates and the `planwise places import` command.

The importer commits, so these tests use a database of their own; each test uses
place_ids with its own prefix so that they do not see each other's rows.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from planwise.errors import PlanwiseError
from planwise.places.categories import CATEGORIES, PRIORITY, category_for
from planwise.places.importer import (
    MAX_OVERVIEW_LENGTH,
    REBUILD_NOTICE,
    ImportReport,
    Rejection,
    SourceRecord,
    import_places,
    import_records,
)
from planwise.places.indexes import REBUILT_INDEXES, SECONDARY_INDEXES, index_definitions
from tests.support.cli import PLANWISE
from tests.support.databases import DatabaseUnderTest, connect

HOURS = {
    "open_now": False,
    "periods": [{"open": {"day": 1, "time": "0900"}, "close": {"day": 1, "time": "1700"}}],
    "weekday_text": ["Monday: 9:00 AM \u2013 5:00 PM"],
}


@pytest.fixture(scope="module")
def import_db(
    create_migrated_database: Callable[[str], DatabaseUnderTest],
) -> DatabaseUnderTest:
    return create_migrated_database("planwise_import")


def google_place(place_id: str, **fields: Any) -> dict[str, Any]:
    """A place object as the Places API returns it (fields we do not import included)."""
    place: dict[str, Any] = {
        "place_id": place_id,
        "name": f"Place {place_id}",
        "geometry": {
            "location": {"lat": 48.8606, "lng": 2.3376},
            "viewport": {"northeast": {"lat": 48.87, "lng": 2.34}},
        },
        "types": ["museum", "tourist_attraction", "point_of_interest", "establishment"],
        "rating": 4.7,
        "user_ratings_total": 12345,
        "vicinity": "Rue de Rivoli, Paris",
        "business_status": "OPERATIONAL",
    }
    place.update(fields)
    return place


def write_json(path: Path, value: object) -> Path:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2))
    return path


def write_lines(path: Path, lines: list[object | str]) -> Path:
    """JSON Lines; a str is written verbatim (for lines that are not valid JSON)."""
    text = [line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines]
    path.write_text("\n".join(text) + "\n")
    return path


def rows(db: DatabaseUnderTest, prefix: str) -> dict[str, dict[str, Any]]:
    """The place rows whose id starts with `prefix`, by id."""
    with connect(db.admin_url) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT id, name, lat, lng, types, category, rating, user_ratings_total, "
            "description, opening_hours, created_at, updated_at FROM place "
            "WHERE starts_with(id, %s) ORDER BY id",
            (prefix,),
        )
        names = [column.name for column in cursor.description or []]
        return {str(row[0]): dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def run(db: DatabaseUnderTest, *paths: Path) -> ImportReport:
    return import_places(db.admin_url, list(paths), progress=False)


# -- categories ----------------------------------------------------------------------------


def test_category_table_is_large_and_every_category_is_reachable() -> None:
    assert len(CATEGORIES) >= 30
    assert len(set(CATEGORIES)) == len(CATEGORIES)
    for category in CATEGORIES:
        assert any(category_for([google_type]) == category for google_type, _ in PRIORITY)


@pytest.mark.parametrize(
    ("types", "category"),
    [
        (["cafe", "bakery", "food", "point_of_interest", "establishment"], "bakery"),
        (["point_of_interest", "bakery", "cafe"], "bakery"),  # priority, not list order
        (["bar", "restaurant", "food"], "restaurant"),
        (["night_club", "bar"], "night_club"),
        (["church", "place_of_worship", "tourist_attraction"], "place_of_worship"),
        (["natural_feature", "establishment"], "nature"),
        (["beach", "natural_feature"], "beach"),
        (["lodging", "point_of_interest"], "lodging"),
        (["point_of_interest", "establishment"], None),
        (["bus_station", "transit_station"], None),
        ([], None),
    ],
)
def test_category_for(types: list[str], category: str | None) -> None:
    assert category_for(types) == category


# -- input shapes and mapping --------------------------------------------------------------


def test_search_response_maps_every_field(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    response = {
        "html_attributions": [],
        "results": [
            google_place(
                "shape-s1",
                name="Musée du Louvre",
                editorial_summary={"language": "en", "overview": "Vast art museum."},
                opening_hours=HOURS,
            ),
            google_place(
                "shape-s2",
                types=["cafe", "food", "point_of_interest", "establishment"],
                rating=4,
                user_ratings_total=0,
            ),
            google_place("shape-s3", types=["establishment"], rating=None),
        ],
        "status": "OK",
    }
    report = run(import_db, write_json(tmp_path / "search.json", response))

    assert (report.read, report.inserted, report.updated, report.rejected) == (3, 3, 0, [])
    places = rows(import_db, "shape-s")
    louvre = places["shape-s1"]
    assert louvre["name"] == "Musée du Louvre"
    assert (louvre["lat"], louvre["lng"]) == (48.8606, 2.3376)
    assert louvre["types"] == "museum,tourist_attraction,point_of_interest,establishment"
    assert louvre["category"] == "museum"
    assert (louvre["rating"], louvre["user_ratings_total"]) == (4.7, 12345)
    assert louvre["description"] == "Vast art museum."
    assert louvre["opening_hours"] == HOURS, "the Google object is stored as it is"
    cafe = places["shape-s2"]
    assert (cafe["category"], cafe["rating"], cafe["user_ratings_total"]) == ("cafe", 4.0, 0)
    assert cafe["description"] is None and cafe["opening_hours"] is None
    plain = places["shape-s3"]
    assert plain["category"] is None and plain["rating"] is None


def test_details_response(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    details = {"html_attributions": [], "result": google_place("shape-d1"), "status": "OK"}
    report = run(import_db, write_json(tmp_path / "details.json", details))
    assert (report.read, report.inserted) == (1, 1)
    assert rows(import_db, "shape-d")["shape-d1"]["category"] == "museum"


def test_bare_list_of_places_and_responses(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    document = [
        google_place("shape-l1"),
        {"result": google_place("shape-l2")},
        {"results": [google_place("shape-l3"), google_place("shape-l4")]},
    ]
    report = run(import_db, write_json(tmp_path / "list.json", document))
    assert (report.read, report.inserted, report.rejected) == (4, 4, [])
    assert sorted(rows(import_db, "shape-l")) == ["shape-l1", "shape-l2", "shape-l3", "shape-l4"]


@pytest.mark.parametrize("name", ["places.jsonl", "places.ndjson", "places-lines.json"])
def test_json_lines_by_extension_or_content(
    import_db: DatabaseUnderTest, tmp_path: Path, name: str
) -> None:
    prefix = f"shape-{name.replace('.', '-')}-"
    path = write_lines(
        tmp_path / name,
        [
            google_place(prefix + "1"),
            {"result": google_place(prefix + "2")},
            "",
            {"results": [google_place(prefix + "3"), google_place(prefix + "4")]},
        ],
    )
    report = run(import_db, path)
    assert (report.read, report.inserted, report.rejected) == (4, 4, [])
    assert len(rows(import_db, prefix)) == 4


# -- rejected records ----------------------------------------------------------------------


def test_bad_records_are_reported_by_line_and_the_good_ones_land(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    no_geometry = google_place("bad-2")
    del no_geometry["geometry"]
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            google_place("bad-ok1"),  # 1
            no_geometry,  # 2
            {"name": "No id", "geometry": {"location": {"lat": 1.0, "lng": 2.0}}},  # 3
            google_place("bad-4", geometry={"location": {"lat": 91, "lng": 2.0}}),  # 4
            google_place("bad-5", geometry={"location": {"lat": 1.0, "lng": "abc"}}),  # 5
            google_place("bad-6", rating=7),  # 6
            google_place("bad-7", name="x" * 201),  # 7
            '{"place_id": "bad-8", "name": ',  # 8: cut short
            google_place("bad-ok2"),  # 9
            {"results": [google_place("bad-ok3"), google_place("bad-10", user_ratings_total=-1)]},
            google_place("bad-11", types="restaurant"),  # 11
            '{"place_id": "bad-12", "geometry": {"location": {"lat": NaN, "lng": 0}}}',  # 12
            google_place("bad-13", name="Nul\x00byte"),  # 13
            google_place("bad-14", opening_hours="9-5"),  # 14
            {"status": "REQUEST_DENIED", "error_message": "The provided API key is invalid."},
        ],
    )
    report = run(import_db, path)

    source = str(path)
    reasons = {(r.line, r.reason) for r in report.rejected}
    assert all(r.source == source for r in report.rejected)
    expected = {
        (2, "missing geometry.location.lat/lng"),
        (3, "missing place_id"),
        (4, "geometry.location.lat 91 out of range -90..90"),
        (5, "geometry.location.lng is not a number: 'abc'"),
        (6, "rating 7 out of range 0..5"),
        (7, "name longer than 200 characters (201)"),
        (10, "place 2 on the line: user_ratings_total is not a count: -1"),
        (11, "types is not a list of strings"),
        (13, "name contains a NUL character"),
        (14, "opening_hours is not an object"),
        (15, "API response with status 'REQUEST_DENIED': The provided API key is invalid."),
    }
    assert expected <= reasons
    invalid_json = {line for line, reason in reasons if reason.startswith("invalid JSON:")}
    assert invalid_json == {8, 12}
    assert len(report.rejected) == len(expected) + 2
    assert (report.read, report.inserted) == (16, 3)
    assert sorted(rows(import_db, "bad-")) == ["bad-ok1", "bad-ok2", "bad-ok3"]


def test_a_broken_json_document_is_unreadable_and_says_where(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """Not one record of a broken JSON document can be read: the file is unreadable (exit
    1, nothing imported, not even the other files of the run), not "records rejected"."""
    good = write_json(tmp_path / "good.json", {"results": [google_place("broken-0")]})
    path = tmp_path / "broken.json"
    path.write_text('{\n  "results": [\n    {"place_id": "broken-1",,}\n  ]\n}\n')
    with pytest.raises(PlanwiseError, match=r"invalid JSON: .*\(line 3, column"):
        run(import_db, good, path)
    result = planwise(import_db, "places", "import", "--no-progress", str(good), str(path))
    assert result.returncode == 1 and "nothing imported" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and rows(import_db, "broken-") == {}


def test_invalid_utf8_is_reported_as_such(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    lines = tmp_path / "latin1.jsonl"
    good = orjson.dumps(google_place("utf-1"))
    lines.write_bytes(good + b"\n" + b'{"place_id": "caf\xe9", "name": "x"}\n')
    report = run(import_db, lines)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, "invalid UTF-8: byte 0xe9 at offset 17")
    ]
    document = tmp_path / "latin1.json"
    document.write_bytes(b'{"results": [{"place_id": "caf\xe9"}]}')
    with pytest.raises(PlanwiseError, match="invalid UTF-8: byte 0xe9 at offset 30"):
        run(import_db, document)


def test_an_over_long_overview_is_rejected(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "overview.jsonl",
        [
            google_place("ov-ok", editorial_summary={"overview": "x" * MAX_OVERVIEW_LENGTH}),
            google_place("ov-long", editorial_summary={"overview": "x" * 50_000_000}),
        ],
    )
    report = run(import_db, path)
    assert [(r.line, r.reason) for r in report.rejected] == [
        (2, f"editorial_summary.overview longer than {MAX_OVERVIEW_LENGTH} characters "
            "(50000000)")
    ]  # fmt: skip
    assert list(rows(import_db, "ov-")) == ["ov-ok"]


def test_records_of_a_json_document_are_numbered(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    document = {"results": [google_place("num-1"), {"name": "no id"}, google_place("num-3")]}
    report = run(import_db, write_json(tmp_path / "numbered.json", document))
    assert report.rejected == [Rejection(str(tmp_path / "numbered.json"), 2, "missing place_id")]
    assert report.inserted == 2


def test_a_missing_file_imports_nothing(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", [google_place("missing-1")])
    with pytest.raises(PlanwiseError, match="no such file"):
        run(import_db, good, tmp_path / "absent.json")
    assert rows(import_db, "missing-") == {}


# -- idempotency and duplicates ------------------------------------------------------------


def test_reimport_changes_nothing_and_keeps_updated_at(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    places = [google_place(f"idem-{n}", opening_hours=HOURS) for n in range(5)]
    path = write_json(tmp_path / "idem.json", {"results": places})
    first = run(import_db, path)
    assert (first.inserted, first.updated, first.unchanged) == (5, 0, 0)
    before = rows(import_db, "idem-")
    assert all(isinstance(row["updated_at"], datetime) for row in before.values())

    second = run(import_db, path)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 5)
    assert second.imported == 0
    assert rows(import_db, "idem-") == before

    # Same opening hours with keys in another order: equal as JSON, still unchanged.
    places[0]["opening_hours"] = dict(reversed(list(HOURS.items())))
    places[1]["rating"] = 3.9
    third = run(import_db, write_json(tmp_path / "idem2.json", {"results": places}))
    assert (third.inserted, third.updated, third.unchanged) == (0, 1, 4)
    after = rows(import_db, "idem-")
    assert after["idem-1"]["rating"] == 3.9
    assert after["idem-1"]["updated_at"] > before["idem-1"]["updated_at"]
    for place_id in ("idem-0", "idem-2", "idem-3", "idem-4"):
        assert after[place_id]["updated_at"] == before[place_id]["updated_at"]


def test_reimport_of_unchanged_places_writes_no_tuple(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """Not even a row lock: ON CONFLICT DO UPDATE would stamp every conflicting tuple's
    xmax (a heap write and WAL) though its WHERE then updates nothing."""
    places = [google_place(f"nolock-{n}", opening_hours=HOURS) for n in range(3)]
    path = write_json(tmp_path / "nolock.json", {"results": places})
    run(import_db, path)

    def tuple_state() -> list[tuple[object, ...]]:
        with connect(import_db.admin_url) as conn:
            return conn.execute(
                "SELECT id, ctid::text, xmax::text FROM place WHERE id LIKE 'nolock-%' ORDER BY id"
            ).fetchall()

    before = tuple_state()
    assert (run(import_db, path).unchanged, tuple_state()) == (3, before)
    assert all(xmax == "0" for _, _, xmax in before)


def test_duplicated_place_ids_last_one_wins(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "dups.jsonl",
        [
            google_place("dup-1", name="first"),
            google_place("dup-2", name="only"),
            google_place("dup-1", name="second"),
            google_place("dup-1", name="third", rating=3.0),
        ],
    )
    report = run(import_db, path)
    assert (report.read, report.inserted, report.duplicates) == (4, 2, 2)
    stored = rows(import_db, "dup-")
    assert (stored["dup-1"]["name"], stored["dup-1"]["rating"]) == ("third", 3.0)
    assert stored["dup-2"]["name"] == "only"


def test_duplicates_across_batches_are_counted_once(import_db: DatabaseUnderTest) -> None:
    """Batches of 2: a place inserted by one batch and changed by a later one is one insert."""
    with connect(import_db.admin_url) as conn:
        conn.execute(
            "INSERT INTO place (id, name, lat, lng) VALUES "
            "('batch-old', 'old', 1, 2), ('batch-same', 'Place batch-same', 48.8606, 2.3376)"
        )
        conn.commit()
    names = ["a", "b", "a2", "old2", "a3", "old3", "b"]
    ids = ["batch-a", "batch-b", "batch-a", "batch-old", "batch-a", "batch-old", "batch-b"]
    records = [
        SourceRecord("test", n, google_place(place_id, name=name, types=None, rating=None,
                                             user_ratings_total=None))
        for n, (place_id, name) in enumerate(zip(ids, names, strict=True), 1)
    ]  # fmt: skip
    records.append(
        SourceRecord("test", 8, google_place("batch-same", types=None, rating=None,
                                             user_ratings_total=None))
    )  # fmt: skip
    with connect(import_db.admin_url) as conn:
        report = import_records(conn, records, batch_size=2)
        conn.commit()
    assert (report.inserted, report.updated, report.unchanged) == (2, 1, 1)
    assert report.duplicates == 4
    stored = rows(import_db, "batch-")
    assert {key: row["name"] for key, row in stored.items()} == {
        "batch-a": "a3",
        "batch-b": "b",
        "batch-old": "old3",
        "batch-same": "Place batch-same",
    }


# -- indexes dropped for a large import and built again -----------------------------------


def place_indexes(db: DatabaseUnderTest) -> dict[str, tuple[str, str | None]]:
    with connect(db.admin_url) as conn:
        return index_definitions(conn, SECONDARY_INDEXES)


def test_a_rebuilding_import_ends_with_the_migrated_indexes(
    import_db: DatabaseUnderTest, tmp_path: Path
) -> None:
    """Definitions and comments (b8c9d0e1f2a3's downgrade reads one) as migrated."""
    migrated = place_indexes(import_db)
    assert sorted(migrated) == sorted(SECONDARY_INDEXES)
    assert migrated["ix_place_category_band_point"][1]  # the comment that must survive
    path = write_lines(tmp_path / "big.jsonl", [google_place(f"big-{n}") for n in range(5)])
    report = import_places(import_db.admin_url, [path], progress=False, rebuild_indexes=True)
    assert (report.inserted, report.rebuilt_indexes) == (5, REBUILT_INDEXES)
    assert 0 < report.index_seconds < report.seconds
    assert place_indexes(import_db) == migrated
    assert run(import_db, path).rebuilt_indexes == ()  # by default: maintained row by row
    with connect(import_db.admin_url) as conn:  # each rebuilt index serves what only it can
        conn.execute("SET enable_seqscan = off")
        for query, index in (
            ("SELECT id FROM place WHERE ST_SetSRID(ST_MakePoint(lng, lat), 4326) "
             "&& ST_MakeEnvelope(2, 48, 3, 49, 4326)", "idx_place_location"),
            ("SELECT category FROM place ORDER BY category LIMIT 1", "idx_place_category"),
        ):  # fmt: skip
            assert index in str(conn.execute(f"EXPLAIN {query}").fetchall()), query


def test_a_failed_rebuilding_import_keeps_the_indexes_and_readers_waited(
    import_db: DatabaseUnderTest,
) -> None:
    """The drop is in the import's transaction: a reader meanwhile waits for its lock (here
    it gives up after 50 ms), and the failure rolls the drop back with the rows."""
    migrated = place_indexes(import_db)
    probes: list[str] = []

    def records() -> Any:
        yield SourceRecord("test", 1, google_place("failed-1"))
        yield SourceRecord("test", 2, google_place("failed-2"))
        with connect(import_db.admin_url) as reader:
            reader.execute("SET lock_timeout = '50ms'")
            try:
                reader.execute("SELECT count(*) FROM place").fetchone()
            except psycopg.errors.LockNotAvailable:
                probes.append("waited")
        raise KeyboardInterrupt  # as if interrupted in the middle

    with connect(import_db.admin_url) as conn:
        with pytest.raises(KeyboardInterrupt):
            import_records(conn, records(), batch_size=1, rebuild_indexes=True)
        conn.rollback()
    assert probes == ["waited"]
    assert place_indexes(import_db) == migrated
    assert rows(import_db, "failed-") == {}


# -- the command ---------------------------------------------------------------------------


def planwise(db: DatabaseUnderTest, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "COLUMNS": "200",
        "DATABASE_URL": db.app_url,
        "MIGRATION_DATABASE_URL": db.admin_url,
    }
    return subprocess.run(
        [PLANWISE, *args], capture_output=True, text=True, env=environment,
        stdin=subprocess.DEVNULL, check=False, timeout=180,
    )  # fmt: skip


def test_cli_exit_codes(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    good = write_json(tmp_path / "good.json", {"results": [google_place("cli-1")]})
    clean = planwise(import_db, "places", "import", "--no-progress", "--rebuild-indexes", str(good))
    assert clean.returncode == 0, clean.stderr
    assert "inserted" in clean.stdout and "Rejected" not in clean.stdout
    assert " ".join(REBUILD_NOTICE.split()[:6]) in " ".join(clean.stdout.split())
    assert "indexes rebuilt" in clean.stdout

    mixed = write_lines(
        tmp_path / "mixed.jsonl", [google_place("cli-2"), google_place("cli-3", rating=7)]
    )
    partial = planwise(import_db, "places", "import", "--no-progress", str(good), str(mixed))
    assert partial.returncode == 4, partial.stderr
    assert "Rejected records" in partial.stdout and "rating 7 out of range" in partial.stdout
    assert sorted(rows(import_db, "cli-")) == ["cli-1", "cli-2"]

    missing = planwise(import_db, "places", "import", str(tmp_path / "absent.jsonl"))
    assert missing.returncode == 1
    assert "no such file" in missing.stderr and "Traceback" not in missing.stderr


def test_cli_progress_bar_goes_to_stderr(import_db: DatabaseUnderTest, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bar.jsonl", [google_place(f"bar-{n}") for n in range(3)])
    result = planwise(import_db, "places", "import", str(path))
    assert result.returncode == 0, result.stderr
    assert "places" in result.stderr and "/s" in result.stderr
    assert "━" not in result.stdout
