"""PostgREST's query grammar: `select`, filters, `or`/`and`, `order`, `columns`, ranges.

A hand-written recursive-descent parser following PostgREST's
`src/PostgREST/ApiRequest/QueryParams.hs`: the same reserved parameters, operators,
quoting (`"a,b"` with backslash escapes), `*` as the `like` wildcard and the same error
shape (PGRST100, message `"failed to parse <what> (<text>)" (line 1, column N)`).
Nothing here touches SQL: names are checked against the catalogue later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from planwise.rest.errors import RestError
from planwise.rest.schemas import (
    EmbedItem,
    FieldItem,
    Filter,
    LogicTree,
    OpExpr,
    OrderTerm,
    ParsedQuery,
    SelectItem,
    StarItem,
)

RESERVED = ("select", "columns", "on_conflict")
RESERVED_EMBEDDABLE = ("order", "limit", "offset", "and", "or")
SIMPLE_OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "like", "ilike", "match", "imatch",
                    "cs", "cd", "ov", "sl", "sr", "nxr", "nxl", "adj", "isdistinct")  # fmt: skip
FTS_OPERATORS = ("fts", "plfts", "phfts", "wfts")
IS_VALUES = ("null", "not_null", "true", "false", "unknown")
IDENTIFIER_CHARS = re.compile(r"[A-Za-z0-9_ $\u0080-\uffff]")
RANGE_HEADER = re.compile(r"^([0-9]+)-([0-9]*)$")
MAX_DEPTH = 32
"""Deepest nesting of embeddings or of and/or groups accepted (a parse error beyond)."""


def parse_error(what: str, text: str, column: int, detail: str) -> RestError:
    return RestError.bad_request(
        "PGRST100", f'"failed to parse {what} ({text})" (line 1, column {column})', detail
    )


class Cursor:
    """A position in one parameter's text, with PostgREST-style error messages."""

    def __init__(self, text: str, what: str) -> None:
        self.text = text
        self.what = what
        self.pos = 0
        self.depth = 0

    def descend(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise parse_error(self.what, self.text, self.pos + 1,
                              f"nested deeper than {MAX_DEPTH} levels")  # fmt: skip

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def fail(self, expecting: str) -> RestError:
        found = f'"{self.text[self.pos]}"' if not self.at_end() else "end of input"
        return parse_error(
            self.what, self.text, self.pos + 1, f"unexpected {found} expecting {expecting}"
        )

    def skip_ws(self) -> None:
        while self.peek() in (" ", "\t") and not self.at_end():
            self.pos += 1

    def take(self, literal: str) -> bool:
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def expect(self, literal: str) -> None:
        if not self.take(literal):
            raise self.fail(f'"{literal}"')

    def quoted(self) -> str:
        """`"…"` with backslash escapes; the cursor is on the opening quote."""
        self.pos += 1
        out: list[str] = []
        while not self.at_end():
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise self.fail('"\\"" (closing quote)')

    def identifier(self) -> str:
        start = self.pos
        while not self.at_end() and IDENTIFIER_CHARS.match(self.text[self.pos]):
            self.pos += 1
        return self.text[start : self.pos].strip()

    def field_name(self) -> str:
        """pFieldName: a quoted name, or identifiers joined by dashes not followed by `>`."""
        if self.peek() == '"':
            return self.quoted()
        parts = [self.identifier()]
        if not parts[0]:
            raise self.fail("field name (* or [a..z0..9_$])")
        while self.peek() == "-" and self.peek(2) != "->":
            self.pos += 1
            part = self.identifier()
            if not part:
                raise self.fail("letter or digit")
            parts.append(part)
        return "-".join(parts)


# -- select -----------------------------------------------------------------------------


def parse_select(text: str) -> list[SelectItem]:
    cursor = Cursor(text, "select parameter")
    items = _select_forest(cursor)
    if not cursor.at_end():
        raise cursor.fail('",", ")" or end of input')
    return items


def _select_forest(cursor: Cursor) -> list[SelectItem]:
    items: list[SelectItem] = []
    cursor.skip_ws()
    if cursor.at_end() or cursor.peek() == ")":
        return items
    while True:
        items.append(_select_item(cursor))
        cursor.skip_ws()
        if not cursor.take(","):
            return items
        cursor.skip_ws()


def _select_item(cursor: Cursor) -> SelectItem:
    cursor.skip_ws()
    if cursor.take("*"):
        return StarItem()
    if cursor.peek(3) == "...":
        raise RestError.not_implemented("spread embedding (...) is not supported")
    name = cursor.field_name()
    alias: str | None = None
    if cursor.peek() == ":" and cursor.peek(2) != "::":
        cursor.pos += 1
        alias, name = name, cursor.field_name()
    if cursor.peek() == "!" or cursor.peek() == "(":
        hint, inner = None, False
        while cursor.take("!"):
            if cursor.take("inner"):
                inner = True
            elif cursor.take("left"):
                inner = False
            else:
                hint = cursor.field_name()
        if cursor.peek() == "(" and name == "count":
            raise RestError.not_implemented("aggregates (count()) are not supported")
        cursor.expect("(")
        cursor.descend()
        children = _select_forest(cursor)
        cursor.depth -= 1
        cursor.expect(")")
        return EmbedItem(name=name, alias=alias, hint=hint, inner=inner, children=children)
    if cursor.peek(2) in ("->",):
        raise RestError.not_implemented("JSON paths (-> and ->>) in select are not supported")
    cast: str | None = None
    if cursor.take("::"):
        cast = cursor.identifier()
        if not cast:
            raise cursor.fail("a type name after ::")
    if cursor.peek() == ".":
        raise RestError.not_implemented("aggregates (.sum(), .count() …) are not supported")
    cursor.skip_ws()
    if not (cursor.at_end() or cursor.peek() in (",", ")")):
        raise cursor.fail('"::", ",", ")" or end of input')
    return FieldItem(name=name, alias=alias, cast=cast)


# -- filters ----------------------------------------------------------------------------


def parse_operation(text: str, what: str, *, in_logic: bool = False) -> OpExpr:
    """`[not.]op.value` as in `id=eq.1` (the whole value) or inside `or=(…)`."""
    cursor = Cursor(text, what)
    expr = _operation(cursor, in_logic=in_logic)
    if not cursor.at_end():
        raise cursor.fail('"," or ")"')
    return expr


def _operation(cursor: Cursor, *, in_logic: bool) -> OpExpr:
    negated = cursor.take("not.")
    start = cursor.pos
    while not cursor.at_end() and (cursor.peek().isalpha() or cursor.peek() == "_"):
        cursor.pos += 1
    operator = cursor.text[start : cursor.pos]
    language: str | None = None
    if operator in FTS_OPERATORS and cursor.peek() == "(":
        cursor.pos += 1
        language = cursor.identifier()
        cursor.expect(")")
    known = operator in SIMPLE_OPERATORS or operator in FTS_OPERATORS or operator in ("in", "is")
    if not known:
        cursor.pos = start
        raise cursor.fail('"not" or operator (eq, gt, ...)')
    if cursor.peek() == "(":
        raise RestError.not_implemented("quantified operators (any/all) are not supported")
    if not cursor.take("."):
        raise cursor.fail("delimiter (.)")
    if operator == "in":
        return OpExpr(negated, "in", values=_list_value(cursor))
    if operator == "is":
        rest = _logic_value(cursor) if in_logic else cursor.text[cursor.pos :]
        if not in_logic:
            cursor.pos = len(cursor.text)
        if rest.lower() not in IS_VALUES:
            raise parse_error(cursor.what, cursor.text, cursor.pos + 1,
                              "unexpected value expecting isVal: "
                              "(null, not_null, true, false, unknown)")  # fmt: skip
        return OpExpr(negated, "is", value=rest.lower())
    if in_logic:
        value = _logic_value(cursor)
    else:
        value = cursor.text[cursor.pos :]
        cursor.pos = len(cursor.text)
    return OpExpr(negated, operator, value=value, language=language)


def _list_value(cursor: Cursor) -> list[str]:
    cursor.skip_ws()
    cursor.expect("(")
    values: list[str] = []
    while True:
        if cursor.peek() == '"':
            values.append(cursor.quoted())
        else:
            start = cursor.pos
            while not cursor.at_end() and cursor.peek() not in (",", ")"):
                cursor.pos += 1
            values.append(cursor.text[start : cursor.pos])
        if not cursor.take(","):
            break
    cursor.expect(")")
    cursor.skip_ws()
    return values


def _logic_value(cursor: Cursor) -> str:
    """pLogicSingleVal: quoted, a `{…}` array literal, or up to the next `,` or `)`."""
    if cursor.peek() == '"':
        return cursor.quoted()
    if cursor.peek() == "{":
        end = cursor.text.find("}", cursor.pos)
        if end < 0:
            raise cursor.fail('"}"')
        value = cursor.text[cursor.pos : end + 1]
        cursor.pos = end + 1
        return value
    start = cursor.pos
    while not cursor.at_end() and cursor.peek() not in (",", ")"):
        cursor.pos += 1
    return cursor.text[start : cursor.pos]


def parse_logic(key_operator: str, negated: bool, text: str) -> LogicTree:
    """`or=(a.eq.1,and(b.gt.2,c.is.null))`: the key's operator prefixed to the value."""
    cursor = Cursor(key_operator + text, "logic tree")
    cursor.what = f"logic tree ({text})"
    tree = _logic_tree(cursor)
    tree = LogicTree(tree.operator, negated != tree.negated, tree.children, tree.filter)
    if not cursor.at_end():
        raise cursor.fail("end of input")
    return tree


def _logic_tree(cursor: Cursor) -> LogicTree:
    cursor.skip_ws()
    save = cursor.pos
    negated = cursor.take("not.")
    for operator in ("and", "or"):
        if cursor.text.startswith(operator + "(", cursor.pos):
            cursor.pos += len(operator) + 1
            cursor.descend()
            children = [_logic_tree(cursor)]
            cursor.skip_ws()
            while cursor.take(","):
                children.append(_logic_tree(cursor))
                cursor.skip_ws()
            cursor.expect(")")
            cursor.depth -= 1
            cursor.skip_ws()
            return LogicTree(operator, negated, children, None)
    cursor.pos = save
    name = cursor.field_name()
    if not cursor.take("."):
        raise cursor.fail("delimiter (.)")
    expr = _operation(cursor, in_logic=True)
    cursor.skip_ws()
    return LogicTree("filter", False, [], Filter(name, expr))


# -- order, columns, ranges ---------------------------------------------------------------


def parse_order(text: str) -> list[OrderTerm]:
    cursor = Cursor(text, "order")
    terms: list[OrderTerm] = []
    while True:
        cursor.skip_ws()
        name = cursor.field_name()
        if cursor.peek() == "(":
            raise RestError.not_implemented("ordering by an embedded resource is not supported")
        direction: str | None = None
        nulls: str | None = None
        for candidate in ("asc", "desc"):
            if cursor.text.startswith("." + candidate, cursor.pos):
                cursor.pos += len(candidate) + 1
                direction = candidate
                break
        for candidate in ("nullsfirst", "nullslast"):
            if cursor.text.startswith("." + candidate, cursor.pos):
                cursor.pos += len(candidate) + 1
                nulls = candidate
                break
        cursor.skip_ws()
        if not (cursor.at_end() or cursor.peek() == ","):
            raise cursor.fail('"asc", "desc", "nullsfirst" or "nullslast"')
        terms.append(OrderTerm(name, direction, nulls))
        if not cursor.take(","):
            return terms


def parse_columns(text: str, what: str) -> list[str]:
    cursor = Cursor(text, what)
    names = []
    while True:
        cursor.skip_ws()
        names.append(cursor.field_name())
        cursor.skip_ws()
        if not cursor.take(","):
            break
    if not cursor.at_end():
        raise cursor.fail('"," or end of input')
    return names


def parse_nonnegative(key: str, text: str) -> int:
    if not text.isdigit():
        raise RestError.bad_request(
            "PGRST100", f'"failed to parse {key} parameter ({text})" (line 1, column 1)',
            f"{key} must be a non-negative integer",
        )  # fmt: skip
    return int(text)


def parse_range_header(value: str | None) -> tuple[int, int | None]:
    """`Range: 0-9` as (offset, last) ; a malformed header means the whole range."""
    if not value:
        return 0, None
    match = RANGE_HEADER.match(value.strip())
    if not match:
        return 0, None
    lower = int(match.group(1))
    upper = int(match.group(2)) if match.group(2) else None
    if upper is not None and upper < lower:
        raise RestError(
            416, "PGRST103", "Requested range not satisfiable",
            "The lower boundary must be lower than or equal to the upper boundary in the "
            "Range header.",
        )  # fmt: skip
    return lower, upper


# -- the whole query string ---------------------------------------------------------------


def _split_path(key: str) -> tuple[tuple[str, ...], str]:
    """`review.rating` → (("review",), "rating"), names quoted or not."""
    cursor = Cursor(key, "tree path")
    parts = [cursor.field_name()]
    while cursor.take("."):
        parts.append(cursor.field_name())
    if not cursor.at_end():
        raise cursor.fail("delimiter (.)")
    return tuple(parts[:-1]), parts[-1]


def parse_query(pairs: Iterable[tuple[str, str]], *, rpc_read: bool = False) -> ParsedQuery:
    """All of PostgREST's query parameters; with `rpc_read`, operator-less pairs are
    the function's arguments (GET /rpc/f?a=1)."""
    query = ParsedQuery()
    for key, value in pairs:
        last = key.rsplit(".", 1)[-1]
        if key == "select":
            query.select = parse_select(value)
        elif key == "columns":
            query.columns = parse_columns(value, "columns parameter")
        elif key == "on_conflict":
            query.on_conflict = parse_columns(value, "on_conflict parameter")
        elif value == "" and last in RESERVED_EMBEDDABLE:
            continue
        elif last in ("and", "or"):
            parts = key.split(".")
            negated = "not" in parts[:-1]
            path = tuple(part for part in parts[:-1] if part != "not")
            query.logic.setdefault(path, []).append(parse_logic(last, negated, value))
        elif last == "order":
            path = tuple(key.split(".")[:-1])
            query.order[path] = parse_order(value)
        elif last == "limit":
            query.limit[tuple(key.split(".")[:-1])] = parse_nonnegative("limit", value)
        elif last == "offset":
            query.offset[tuple(key.split(".")[:-1])] = parse_nonnegative("offset", value)
        else:
            path, column = _split_path(key)
            if rpc_read and not path:
                try:
                    expr = parse_operation(value, f"filter ({value})")
                except RestError:
                    query.arguments[column] = value
                    continue
            else:
                expr = parse_operation(value, f"filter ({value})")
            query.filters.setdefault(path, []).append(Filter(column, expr))
    return query
