"""`planwise demo load`: deterministic demo places and users, idempotent.

Places go through the importer (`import_records`) as the owner, like a real Google
Places import. Users go through the application's own path: as `app_service`, the
SECURITY DEFINER registration function, then their preferences and reviews under
row-level security with `app.user_id` set to them. A demo user that already exists is
left as it is, so running the command again changes nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Annotated, Any

import psycopg
import typer
from rich.table import Table

from planwise.cli_support import console
from planwise.config import get_settings
from planwise.db.engine import libpq_url
from planwise.demo import data
from planwise.errors import PlanwiseError
from planwise.places.importer import ImportReport, SourceRecord, import_records
from planwise.users.security import hash_password

app = typer.Typer(no_args_is_help=True, help="Demo data: places around real cities, users.")

SOURCE = "demo"
FIND_LOGIN = "SELECT id FROM planwise_find_login(%s)"
REGISTER = "SELECT planwise_register_user(%s, %s, %s)"
SET_ACTING_USER = "SELECT set_config('app.user_id', %s, true)"
INSERT_PREFERENCE = "INSERT INTO preference (user_id, category, rating) VALUES (%s, %s, %s)"
INSERT_REVIEW = "INSERT INTO review (user_id, place_id, rating, comment) VALUES (%s, %s, %s, %s)"


@dataclass
class DemoSummary:
    places: ImportReport
    places_per_city: Counter[str]
    created_users: list[str] = field(default_factory=list)
    existing_users: list[str] = field(default_factory=list)
    preferences: int = 0
    reviews: int = 0


def load_places(admin_url: str, records: list[dict[str, Any]]) -> ImportReport:
    """The demo places, through the importer, as the owner (places are admin-written)."""
    with psycopg.connect(libpq_url(admin_url), application_name="planwise-demo") as conn:
        report = import_records(
            conn, (SourceRecord(SOURCE, n, record) for n, record in enumerate(records, 1))
        )
        if report.rejected:  # generated data is valid by construction: a bug, keep nothing
            first = report.rejected[0]
            raise PlanwiseError(f"demo place {first.line} rejected: {first.reason}")
        conn.commit()
    return report


def load_users(app_url: str, records: list[dict[str, Any]], summary: DemoSummary) -> None:
    """Register each missing demo user and add their preferences and reviews as them."""
    with psycopg.connect(libpq_url(app_url), application_name="planwise-demo") as conn:
        for user in data.DEMO_USERS:
            if conn.execute(FIND_LOGIN, (user.username,)).fetchone() is not None:
                summary.existing_users.append(user.username)
                conn.rollback()
                continue
            hashed = hash_password(data.DEMO_PASSWORD)
            row = conn.execute(REGISTER, (user.username, hashed, user.full_name)).fetchone()
            assert row is not None
            user_id = int(str(row[0]))
            conn.execute(SET_ACTING_USER, (str(user_id),))
            preferences = data.preferences(user)
            reviews = data.reviews(user, records)
            with conn.cursor() as cursor:
                cursor.executemany(
                    INSERT_PREFERENCE,
                    [(user_id, category, rating) for category, rating in preferences.items()],
                )
                cursor.executemany(
                    INSERT_REVIEW,
                    [(user_id, r.place_id, r.rating, r.comment) for r in reviews],
                )
            conn.commit()  # one transaction per user: app.user_id ends with it
            summary.created_users.append(user.username)
            summary.preferences += len(preferences)
            summary.reviews += len(reviews)


def load_demo(admin_url: str, app_url: str, place_count: int) -> DemoSummary:
    records = data.places(place_count)
    summary = DemoSummary(
        places=load_places(admin_url, records),
        places_per_city=Counter(data.city_of(n).name for n in range(place_count)),
    )
    load_users(app_url, records, summary)
    return summary


def print_summary(summary: DemoSummary) -> None:
    cities = Table(title="Demo places per city")
    cities.add_column("city")
    cities.add_column("country")
    cities.add_column("places", justify="right")
    for city in data.CITIES:
        cities.add_row(city.name, city.country, f"{summary.places_per_city[city.name]:,}")
    console.print(cities)

    report = summary.places
    table = Table(show_header=False, title="Demo data loaded")
    table.add_row("cities", str(len(summary.places_per_city)))
    table.add_row(
        "places",
        f"{report.read:,} ({report.inserted:,} new, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged)",
    )
    table.add_row(
        "users",
        f"{len(summary.created_users)} created, {len(summary.existing_users)} already there",
    )
    table.add_row("preferences / reviews added", f"{summary.preferences} / {summary.reviews}")
    for user in data.DEMO_USERS:
        table.add_row("log in as", f"{user.username} / {data.DEMO_PASSWORD}  ({user.city})")
    console.print(table)


@app.command()
def load(
    places: Annotated[
        int,
        typer.Option("--places", min=len(data.CITIES), max=1_000_000, help="how many demo places"),
    ] = 2000,
) -> None:
    """Load demo places and users (deterministic; running it again changes nothing)."""
    settings = get_settings()
    print_summary(load_demo(settings.admin_url, settings.app_url, places))
