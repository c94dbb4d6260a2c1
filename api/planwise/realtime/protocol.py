"""The Phoenix channel protocol as Supabase Realtime speaks it, and its change filters.

Text frames are JSON: objects `{topic, event, payload, ref, join_ref}` for serializer
`vsn=1.0.0` (what the Python `realtime` client uses) or arrays
`[join_ref, ref, topic, event, payload]` for `vsn=2.0.0` (supabase-js 2.x). With 2.0.0
a broadcast may also travel as a binary frame, laid out as Supabase Realtime's
`RealtimeWeb.Socket.V2Serializer` lays it out (every size one byte, strings UTF-8):

- client to server, kind 3 (user broadcast push): `3, len(join_ref), len(ref),
  len(topic), len(event), len(metadata), encoding, join_ref, ref, topic, event,
  metadata (JSON or empty), payload` with encoding 1 for a JSON payload, 0 for bytes;
- server to client, kind 4 (user broadcast): `4, len(topic), len(event), len(metadata),
  encoding, topic, event, metadata, payload`.

Kind 0 (a push with a binary payload) is decoded too, so its sender gets an error reply
on its channel. Filters are Realtime's `column=op.value` strings, ANDed with commas.
"""

from __future__ import annotations

import contextlib
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
    """A frame or a join request this server cannot accept; the message says why.
    `frame`: as much of the frame as could be read (topic and refs), to reply to."""

    def __init__(self, message: str, frame: Frame | None = None) -> None:
        super().__init__(message)
        self.frame = frame


@dataclass(frozen=True)
class Frame:
    topic: str
    event: str
    payload: Mapping[str, Any]
    ref: str | None = None
    join_ref: str | None = None
    binary: bytes | None = None
    """A broadcast's payload when it is bytes (encoding 0), not JSON."""
    binary_push: bool = False
    """A broadcast that arrived as a binary frame: 2.0.0 subscribers get it as one."""


PUSH, REPLY, BROADCAST, USER_BROADCAST_PUSH, USER_BROADCAST = 0, 1, 2, 3, 4
BINARY_ENCODING, JSON_ENCODING = 0, 1


def _ref(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError("ref and join_ref must be strings")


def _take(data: bytes, offset: int, size: int, what: str) -> tuple[str, int]:
    end = offset + size
    if end > len(data):
        raise ProtocolError(f"binary frame too short for its {what}")
    try:
        return data[offset:end].decode(), end
    except UnicodeDecodeError:
        raise ProtocolError(f"binary frame: {what} is not UTF-8") from None


def decode_binary(data: bytes) -> Frame:
    """A vsn 2.0.0 binary frame: a user broadcast push (kind 3) or a push (kind 0)."""
    kind = data[0] if data else None
    if kind == USER_BROADCAST_PUSH and len(data) >= 7:
        sizes, offset = data[1:6], 7
        encoding = data[6]
        join_ref, offset = _take(data, offset, sizes[0], "join_ref")
        ref, offset = _take(data, offset, sizes[1], "ref")
        topic, offset = _take(data, offset, sizes[2], "topic")
        partial = Frame(topic, "broadcast", {}, ref or None, join_ref or None)
        try:
            event, offset = _take(data, offset, sizes[3], "event")
            metadata, offset = _take(data, offset, sizes[4], "metadata")
            body = data[offset:]
            payload: dict[str, Any] = {"type": "broadcast", "event": event}
            binary = None
            if encoding == JSON_ENCODING:
                payload["payload"] = orjson.loads(body)
            elif encoding == BINARY_ENCODING:
                binary = bytes(body)
            else:
                raise ProtocolError(f"binary frame: unknown payload encoding {encoding}")
            if metadata:
                meta = orjson.loads(metadata)
                if isinstance(meta, dict):
                    payload["meta"] = meta
        except orjson.JSONDecodeError:
            raise ProtocolError("binary broadcast: payload is not JSON", partial) from None
        except ProtocolError as error:
            raise ProtocolError(str(error), partial) from None
        return Frame(topic, "broadcast", payload, ref or None, join_ref or None, binary, True)
    if kind == PUSH and len(data) >= 5:
        sizes, offset = data[1:5], 5
        join_ref, offset = _take(data, offset, sizes[0], "join_ref")
        ref, offset = _take(data, offset, sizes[1], "ref")
        topic, offset = _take(data, offset, sizes[2], "topic")
        event, offset = _take(data, offset, sizes[3], "event")
        frame = Frame(topic, event, {}, ref or None, join_ref or None, bytes(data[offset:]))
        raise ProtocolError(f"binary payloads are only accepted for broadcasts, not {event}", frame)
    raise ProtocolError(f"unknown binary frame kind {kind}")


def decode(text: str | bytes, vsn: Vsn, *, binary: bool = False) -> Frame:
    """A client frame; ProtocolError when it is not one."""
    if binary and vsn == "2.0.0":
        assert isinstance(text, bytes)
        return decode_binary(text)
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ProtocolError("frames must be JSON") from None
    if vsn == "2.0.0":
        if not (isinstance(raw, list) and len(raw) >= 5):
            raise ProtocolError("vsn 2.0.0 frames are [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = raw[:5]
    else:
        if not isinstance(raw, dict):
            raise ProtocolError("vsn 1.0.0 frames are JSON objects")
        join_ref, ref = raw.get("join_ref"), raw.get("ref")
        topic, event, payload = raw.get("topic"), raw.get("event"), raw.get("payload", {})
    if not isinstance(topic, str) or not isinstance(event, str):
        raise ProtocolError("topic and event must be strings")
    if not isinstance(payload, dict):
        partial = None
        with contextlib.suppress(ProtocolError):
            partial = Frame(topic, event, {}, _ref(ref), _ref(join_ref))
        raise ProtocolError("payload must be an object", partial)
    return Frame(topic, event, payload, _ref(ref), _ref(join_ref))


def _default(value: object) -> object:
    return str(value)


def _sized(value: str, what: str) -> bytes:
    encoded = value.encode()
    if len(encoded) > 255:
        raise ProtocolError(f"{what} longer than 255 bytes cannot travel in a binary frame")
    return encoded


def encode_user_broadcast(frame: Frame) -> bytes:
    """Kind 4, what supabase-js decodes: a broadcast that arrived as a binary push."""
    topic, event = _sized(frame.topic, "topic"), _sized(str(frame.payload["event"]), "event")
    if frame.binary is not None:
        encoding, body = BINARY_ENCODING, frame.binary
    else:
        encoding, body = JSON_ENCODING, orjson.dumps(frame.payload.get("payload"))
    meta = frame.payload.get("meta")
    metadata = _sized(orjson.dumps(meta).decode(), "metadata") if meta else b""
    head = bytes((USER_BROADCAST, len(topic), len(event), len(metadata), encoding))
    return head + topic + event + metadata + body


def encode(frame: Frame, vsn: Vsn) -> str | bytes | None:
    """The frame in the connection's serializer: text, a binary frame, or None when the
    serializer cannot carry it (a bytes payload to a 1.0.0 client, as on Supabase)."""
    body: object
    if frame.binary_push and vsn == "2.0.0":
        return encode_user_broadcast(frame)
    if frame.binary is not None:
        return None
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
