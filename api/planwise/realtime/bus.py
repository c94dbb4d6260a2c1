"""What API processes tell each other through PostgreSQL (migration e1f2a3b4c5d6).

Broadcasts and presence diffs are rows of `planwise_realtime.bus`, inserted and announced
(`NOTIFY planwise_bus, '<id>'`) in one autocommit statement, so a message reaches the
subscribers of every API process, and only a message the database holds does. Presences
are rows of `planwise_realtime.presence`, kept alive by the process that tracks them
(`PRESENCE_TTL_SECONDS`); a process that dies without untracking loses its presences
when they expire. Changes are rows of `planwise_realtime.change_log`, which only the
triggers write. Every function here is blocking: call it through `asyncio.to_thread`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from planwise.db.session import read_in_autocommit

BUS_CHANNEL = "planwise_bus"
CHANGES_CHANNEL = "planwise_changes"
PRESENCE_TTL_SECONDS = 60
REPLAY_SECONDS = 300
"""How far back the listener replays changes and messages after a gap; the migration
keeps 10 minutes of both, so a replay never asks for what may already be pruned."""


def bus_topic(subtopic: str, private: bool) -> str:
    """Private and public channels of the same name are different topics, as on Supabase."""
    return ("private:" if private else "public:") + subtopic


@dataclass(frozen=True)
class BusMessage:
    id: int
    topic: str
    kind: str  # broadcast | presence
    body: Mapping[str, Any]
    binary: bytes | None


@dataclass(frozen=True)
class LoggedChange:
    id: int
    table: str
    type: str
    at: str
    keys: list[str]
    owners: list[int | None] | None


PUBLISH = text(
    """
    WITH m AS (
        INSERT INTO planwise_realtime.bus (topic, kind, body, binary_body)
        VALUES (:topic, :kind, :body, :binary) RETURNING id
    ), quick AS (SELECT set_config('synchronous_commit', 'off', true))
    SELECT pg_notify('planwise_bus', id::text) FROM m, quick
    """
).bindparams(bindparam("body", type_=JSONB))
"""`synchronous_commit` off for this transaction only: a broadcast is ephemeral (as on
Supabase), so its commit need not wait for the WAL flush; NOTIFY is sent at commit all the
same, and a crash loses at most messages already delivered."""


QUICK_COMMIT = text("SELECT set_config('synchronous_commit', 'off', true)")


def _publish(
    connection: Connection, topic: str, kind: str, body: object, binary: bytes | None
) -> None:
    connection.execute(PUBLISH, {"topic": topic, "kind": kind, "body": body, "binary": binary})


def publish(
    engine: Engine, topic: str, kind: str, body: object, binary: bytes | None = None
) -> None:
    """One message to every API process: one autocommit statement, one round trip."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        _publish(connection, topic, kind, body, binary)


def _read_recent(engine: Engine, table: str, columns: str, ids: Sequence[int]) -> list[Any]:
    """The rows among `ids` logged within the replay window, by id: a row older than that
    is not delivered, whoever names it."""
    query = text(
        f"SELECT {columns} FROM planwise_realtime.{table} "  # noqa: S608 - constants
        "WHERE id = ANY(:ids) AND logged_at > clock_timestamp() - make_interval(secs => :age) "
        "ORDER BY id"
    )
    params = {"ids": list(ids), "age": REPLAY_SECONDS}
    return read_in_autocommit(engine, lambda c: list(c.execute(query, params)))


def read_bus(engine: Engine, ids: Sequence[int]) -> list[BusMessage]:
    rows = _read_recent(engine, "bus", "id, topic, kind, body, binary_body", ids)
    return [BusMessage(r.id, r.topic, r.kind, r.body, r.binary_body) for r in rows]


def read_changes(engine: Engine, ids: Sequence[int]) -> list[LoggedChange]:
    rows = _read_recent(engine, "change_log", "id, table_name, op, at, keys, owners", ids)
    return [LoggedChange(r.id, r.table_name, r.op, r.at, r.keys, r.owners) for r in rows]


RECENT_CHANGES = text(
    "SELECT id FROM planwise_realtime.change_log "
    "WHERE logged_at > clock_timestamp() - make_interval(secs => :age) ORDER BY id"
)
RECENT_MESSAGES = text(
    "SELECT id FROM planwise_realtime.bus "
    "WHERE logged_at > clock_timestamp() - make_interval(secs => :age) ORDER BY id"
)


def recent_ids(engine: Engine) -> tuple[list[int], list[int]]:
    """Ids of the changes and bus messages of the replay window, oldest first."""

    def run(connection: Connection) -> tuple[list[int], list[int]]:
        params = {"age": REPLAY_SECONDS}
        changes = [r.id for r in connection.execute(RECENT_CHANGES, params)]
        return changes, [r.id for r in connection.execute(RECENT_MESSAGES, params)]

    return read_in_autocommit(engine, run)


# -- presence --------------------------------------------------------------------------


def _grouped(rows: Iterable[Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Phoenix's shape: {key: {"metas": [{"phx_ref": ref, ...meta}]}}."""
    state: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for row in rows:
        state.setdefault(row.key, {"metas": []})["metas"].append({**row.meta, "phx_ref": row.ref})
    return state


def presence_state(engine: Engine, topic: str) -> dict[str, dict[str, list[dict[str, Any]]]]:
    query = text(
        "SELECT key, ref, meta FROM planwise_realtime.presence "
        "WHERE topic = :topic AND expires_at > clock_timestamp() ORDER BY key, ref"
    )
    return read_in_autocommit(engine, lambda c: _grouped(c.execute(query, {"topic": topic})))


def track(
    engine: Engine, topic: str, key: str, ref: str, previous: str | None, worker: str, meta: object
) -> None:
    """Insert (or replace) a presence and tell every process: joins, and leaves for the
    presence it replaces."""
    delete = text(
        "DELETE FROM planwise_realtime.presence WHERE ref = :ref RETURNING key, ref, meta"
    )
    insert = text(
        "INSERT INTO planwise_realtime.presence (ref, topic, key, worker, meta, expires_at) "
        "VALUES (:ref, :topic, :key, :worker, :meta, "
        "clock_timestamp() + make_interval(secs => :ttl)) RETURNING key, ref, meta"
    ).bindparams(bindparam("meta", type_=JSONB))

    def run(connection: Connection) -> None:
        with connection.begin():
            left = list(connection.execute(delete, {"ref": previous})) if previous else []
            joined = connection.execute(
                insert,
                {"ref": ref, "topic": topic, "key": key, "worker": worker, "meta": meta,
                 "ttl": PRESENCE_TTL_SECONDS},
            )  # fmt: skip
            body = {"joins": _grouped(joined), "leaves": _grouped(left)}
            _publish(connection, topic, "presence", body, None)

    with engine.connect() as connection:
        run(connection)


def untrack(engine: Engine, refs: Sequence[str]) -> None:
    """Remove presences and announce them as leaves, per topic."""
    delete = text(
        "DELETE FROM planwise_realtime.presence WHERE ref = ANY(:refs) "
        "RETURNING topic, key, ref, meta"
    )
    with engine.connect() as connection, connection.begin():
        _announce_leaves(connection, connection.execute(delete, {"refs": list(refs)}))


def _announce_leaves(connection: Connection, rows: Iterable[Any]) -> None:
    by_topic: dict[str, list[Any]] = {}
    for row in rows:
        by_topic.setdefault(row.topic, []).append(row)
    for topic, left in by_topic.items():
        _publish(connection, topic, "presence", {"joins": {}, "leaves": _grouped(left)}, None)


def keep_alive(engine: Engine, worker: str) -> None:
    """Extend this process's presences, expire the dead ones (announced as leaves), and
    prune old bus messages."""
    extend = text(
        "UPDATE planwise_realtime.presence "
        "SET expires_at = clock_timestamp() + make_interval(secs => :ttl) WHERE worker = :worker"
    )
    expire = text(
        "DELETE FROM planwise_realtime.presence WHERE expires_at <= clock_timestamp() "
        "RETURNING topic, key, ref, meta"
    )
    prune = text(
        "DELETE FROM planwise_realtime.bus "
        "WHERE logged_at < clock_timestamp() - make_interval(secs => :age)"
    )
    with engine.connect() as connection, connection.begin():
        connection.execute(QUICK_COMMIT)
        connection.execute(extend, {"ttl": PRESENCE_TTL_SECONDS, "worker": worker})
        _announce_leaves(connection, connection.execute(expire))
        connection.execute(prune, {"age": 2 * REPLAY_SECONDS})


def dumps(value: object) -> str:
    return orjson.dumps(value).decode()
