"""Parsed PostgREST requests: select trees, filters, logic trees, order, preferences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Path = tuple[str, ...]
"""Where a filter, order or limit applies: () the root, ("review",) an embedded resource."""


@dataclass(frozen=True)
class StarItem:
    pass


@dataclass(frozen=True)
class FieldItem:
    name: str
    alias: str | None = None
    cast: str | None = None


@dataclass(frozen=True)
class EmbedItem:
    name: str
    alias: str | None
    hint: str | None
    inner: bool
    children: list[SelectItem]


SelectItem = StarItem | FieldItem | EmbedItem


@dataclass(frozen=True)
class OpExpr:
    negated: bool
    operator: str
    value: str = ""
    values: list[str] = field(default_factory=list)
    language: str | None = None


@dataclass(frozen=True)
class Filter:
    column: str
    expr: OpExpr


@dataclass(frozen=True)
class LogicTree:
    operator: Literal["and", "or", "filter"] | str
    negated: bool
    children: list[LogicTree]
    filter: Filter | None


@dataclass(frozen=True)
class OrderTerm:
    column: str
    direction: str | None
    nulls: str | None


@dataclass
class ParsedQuery:
    select: list[SelectItem] = field(default_factory=lambda: [StarItem()])
    columns: list[str] | None = None
    on_conflict: list[str] | None = None
    filters: dict[Path, list[Filter]] = field(default_factory=dict)
    logic: dict[Path, list[LogicTree]] = field(default_factory=dict)
    order: dict[Path, list[OrderTerm]] = field(default_factory=dict)
    limit: dict[Path, int] = field(default_factory=dict)
    offset: dict[Path, int] = field(default_factory=dict)
    arguments: dict[str, str] = field(default_factory=dict)

    def has_root_filter(self) -> bool:
        return bool(self.filters.get(())) or bool(self.logic.get(()))


@dataclass(frozen=True)
class Preferences:
    """The `Prefer` header, as PostgREST reads it (unknown preferences are ignored)."""

    representation: Literal["full", "minimal", "headers-only"] | None = None
    count: bool = False
    resolution: Literal["merge-duplicates", "ignore-duplicates"] | None = None
    missing_default: bool = False
    unsupported: tuple[str, ...] = ()
    """Preferences PostgREST honours and we do not: refused rather than ignored."""

    @classmethod
    def parse(cls, values: list[str]) -> Preferences:
        items = [item.strip() for value in values for item in value.split(",")]
        representation: Any = None
        count = False
        resolution: Any = None
        missing_default = False
        unsupported: list[str] = []
        for item in items:
            if item == "return=representation":
                representation = "full"
            elif item == "return=minimal":
                representation = "minimal"
            elif item == "return=headers-only":
                representation = "headers-only"
            elif item in ("count=exact", "count=planned", "count=estimated"):
                count = True
            elif item in ("resolution=merge-duplicates", "resolution=ignore-duplicates"):
                resolution = item.split("=", 1)[1]
            elif item == "missing=default":
                missing_default = True
            elif item in ("tx=rollback", "handling=strict") or item.startswith(
                ("max-affected=", "timezone=")
            ):
                unsupported.append(item)
        return cls(representation, count, resolution, missing_default, tuple(unsupported))

    def applied(self) -> str:
        """The `Preference-Applied` header value."""
        parts = []
        if self.resolution:
            parts.append(f"resolution={self.resolution}")
        if self.representation:
            name = {"full": "representation"}.get(self.representation, self.representation)
            parts.append(f"return={name}")
        if self.count:
            parts.append("count=exact")
        return ", ".join(parts)


@dataclass(frozen=True)
class Identity:
    """Who is calling: the database role the request runs as and the JWT's claims."""

    role: Literal["anon", "authenticated", "service_role"]
    claims: dict[str, Any]


@dataclass
class Outcome:
    """What a request produced, before it becomes an HTTP response."""

    body: str | None
    rows: int
    total: int | None = None
    inserted: int = 0
    location: str | None = None
