"""The Phoenix channel protocol as Supabase Realtime speaks it, and its change filters.

Frames are JSON: objects `{topic, event, payload, ref, join_ref}` for serializer
`vsn=1.0.0` (what the Python `realtime` client uses) or arrays
`[join_ref, ref, topic, event, payload]` for `vsn=2.0.0` (recent supabase-js).
Filters are Realtime's `column=op.value` strings, ANDed with commas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

Vsn = Literal["1.0.0", "2.0.0"]
SUPPORTED_VSN: dict[str, Vsn] = {"1.0.0": "1.0.0", "2.0.0": "2.0.0"}

PHOENIX_TOPIC = "phoenix"
TOPIC_PREFIX = "realtime:"
EVENTS = ("*", "INSERT", "UPDATE", "DELETE")
OPERATORS = ("eq", "neq", "lt", "lte", "gt", "gte", "in", "is")


class ProtocolError(Exception):
    """A frame or a join request this server cannot accept; the message says why."""


@dataclass(frozen=True)
class Frame:
    topic: str
    event: str
    payload: Mapping[str, Any]
    ref: str | None = None
    join_ref: str | None = None


def _ref(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError("ref and join_ref must be strings")


def decode(text: str | bytes, vsn: Vsn) -> Frame:
    """A client frame; ProtocolError when it is not one."""
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("frames must be JSON") from None
    if vsn == "2.0.0":
        if not (isinstance(raw, list) and len(raw) == 5):
            raise ProtocolError("vsn 2.0.0 frames are [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = raw
    else:
        if not isinstance(raw, dict):
            raise ProtocolError("vsn 1.0.0 frames are JSON objects")
        join_ref, ref = raw.get("join_ref"), raw.get("ref")
        topic, event, payload = raw.get("topic"), raw.get("event"), raw.get("payload", {})
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ProtocolError("topic and event must be strings")
    if not isinstance(payload, dict):
        raise ProtocolError("payload must be an object")
    return Frame(topic, event, payload, _ref(ref), _ref(join_ref))


def _default(value: object) -> object:
    return str(value)


def encode(frame: Frame, vsn: Vsn) -> str:
    """The frame as text, in the connection's serializer."""
    body: object
    if vsn == "2.0.0":
        body = [frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload]
    else:
        body = {
            "topic": frame.topic,
            "event": frame.event,
            "payload": frame.payload,
            "ref": frame.ref,
            "join_ref": frame.join_ref,
        }
    return orjson.dumps(body, default=_default).decode()


def reply(to: Frame, status: Literal["ok", "error"], response: Mapping[str, Any]) -> Frame:
    """`phx_reply` to a client push, matched by its ref."""
    return Frame(
        to.topic, "phx_reply", {"status": status, "response": response}, to.ref, to.join_ref
    )


def error_reply(to: Frame, reason: str) -> Frame:
    return reply(to, "error", {"reason": reason})


def system(topic: str, extension: str, status: Literal["ok", "error"], message: str) -> Frame:
    """Realtime's `system` message: the channel's extension status, shown to the client."""
    channel = topic.removeprefix(TOPIC_PREFIX)
    payload = {"channel": channel, "extension": extension, "status": status, "message": message}
    return Frame(topic, "system", payload)


# -- filters -------------------------------------------------------------------------

_FILTER = re.compile(
    r"^(?P<column>[A-Za-z_][A-Za-z0-9_]*)=(?P<negate>not\.)?(?P<op>[a-z]+)\.(?P<value>.*)$",
    re.S,
)


@dataclass(frozen=True)
class Condition:
    column: str
    op: str
    value: str | tuple[str, ...]
    negate: bool = False

    def test(self, record: Mapping[str, Any]) -> bool:
        result = _compare(record.get(self.column), self.op, self.value)
        return not result if self.negate else result


def _split_conditions(text: str) -> list[str]:
    """Commas separate conditions, except inside `in.(a,b)` lists."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def parse_filter(text: str, columns: frozenset[str]) -> tuple[Condition, ...]:
    """`user_id=eq.7`, `category=in.(museum,park)`, `rating=gte.0.5,user_id=eq.7`."""
    conditions = []
    for part in _split_conditions(text):
        match = _FILTER.match(part)
        if match is None:
            raise ProtocolError(f"invalid filter {part!r}: expected column=operator.value")
        column, op, value = match["column"], match["op"], match["value"]
        if column not in columns:
            raise ProtocolError(f"invalid column for filter {column}")
        if op not in OPERATORS:
            raise ProtocolError(f"invalid operator {op!r}: use one of {', '.join(OPERATORS)}")
        parsed: str | tuple[str, ...] = value
        if op == "in":
            if not (value.startswith("(") and value.endswith(")")):
                raise ProtocolError(f"invalid filter {part!r}: in needs a list, in.(a,b)")
            parsed = tuple(item.strip().strip('"') for item in value[1:-1].split(","))
        elif op == "is" and value.lower() not in ("null", "true", "false"):
            raise ProtocolError(f"invalid filter {part!r}: is takes null, true or false")
        conditions.append(Condition(column, op, parsed, bool(match["negate"])))
    return tuple(conditions)


def _typed(like: object, text: str) -> object:
    """The filter's text as the record value's type, so 7 = '7' and 0.5 < 0.75."""
    if isinstance(like, bool):
        if text.lower() not in ("true", "false"):
            raise ValueError(text)
        return text.lower() == "true"
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    if isinstance(like, datetime):
        return datetime.fromisoformat(text)
    return text


def _compare(actual: object, op: str, expected: str | tuple[str, ...]) -> bool:
    if op == "is":
        assert isinstance(expected, str)
        wanted = None if expected.lower() == "null" else expected.lower() == "true"
        return actual is wanted
    if actual is None:
        return False
    try:
        if isinstance(expected, tuple):
            return actual in {_typed(actual, item) for item in expected}
        value: Any = _typed(actual, expected)
        current: Any = actual if not isinstance(actual, dict | list) else str(actual)
        return bool(
            {
                "eq": lambda: current == value,
                "neq": lambda: current != value,
                "lt": lambda: current < value,
                "lte": lambda: current <= value,
                "gt": lambda: current > value,
                "gte": lambda: current >= value,
            }[op]()
        )
    except (ValueError, TypeError):
        return False


# -- bindings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Binding:
    """One `postgres_changes` entry of a join, with the id the server gave it."""

    id: int
    event: str
    table: str | None  # None: every published table
    conditions: tuple[Condition, ...]
    select: tuple[str, ...] | None
    echo: Mapping[str, Any] = field(default_factory=dict)
    """What the client sent, returned with `id` in the join reply (the client compares)."""

    def wants(self, table: str, event: str) -> bool:
        return (self.table is None or self.table == table) and self.event in ("*", event)

    def matches(self, record: Mapping[str, Any], *, partial: bool = False) -> bool:
        """Do the filter's conditions hold? `partial`: the record holds only some columns
        (a deleted row's key and owner); conditions on the others pass, as in Realtime,
        which lets deletes through filters."""
        return all(
            condition.test(record)
            for condition in self.conditions
            if not partial or condition.column in record
        )


def parse_binding(binding_id: int, raw: object, published: Mapping[str, frozenset[str]]) -> Binding:
    """A binding from the join payload; `published` maps each table to its columns."""
    if not isinstance(raw, dict):
        raise ProtocolError("each postgres_changes entry must be an object")
    event = raw.get("event")
    if event not in EVENTS:
        raise ProtocolError(f"invalid event {event!r}: use one of {', '.join(EVENTS)}")
    schema = raw.get("schema", "public")
    if schema not in ("public", "*"):
        raise ProtocolError(f"schema {schema!r} is not published: only public")
    table = raw.get("table")
    if table in (None, "*"):
        columns = frozenset().union(*published.values())
        table_name = None
    elif isinstance(table, str) and table in published:
        columns, table_name = published[table], table
    else:
        raise ProtocolError(
            f"table {table!r} is not published: choose from {', '.join(sorted(published))}"
        )
    text = raw.get("filter")
    if text is not None and not isinstance(text, str):
        raise ProtocolError("filter must be a string")
    conditions = parse_filter(text, columns) if text else ()
    select = raw.get("select")
    if select is not None:
        if not (isinstance(select, list) and all(isinstance(c, str) for c in select)):
            raise ProtocolError("select must be a list of column names")
        unknown = sorted(set(select) - columns)
        if unknown:
            raise ProtocolError(f"select names unknown columns: {', '.join(unknown)}")
    return Binding(
        id=binding_id,
        event=str(event),
        table=table_name,
        conditions=conditions,
        select=tuple(select) if select is not None else None,
        echo=dict(raw),
    )
