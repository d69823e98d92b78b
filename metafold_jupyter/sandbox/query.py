"""Parsing and applying the list endpoints' ``sort`` and ``q`` parameters.

``sort`` is ``<field>:1`` (ascending) or ``<field>:-1`` (descending). Without
it, lists come in ID-descending order (IDs compare as numbers).

``q`` is one or more ``field:value`` terms joined by ``AND`` (any case, with
whitespace around it). A value may be double-quoted, which lets it hold spaces
and the word AND (``name:"Lattice AND gyroid"``); an unquoted value runs to
the next ``AND``. ``*`` is a wildcard matching any run of characters (quoted
or not); every other character is literal. Matching is case-insensitive and,
without a wildcard, exact. A ``!`` in front of the term (``!state:success``)
or of the value (``state:!success``) negates the term; writing both cancels
out. A ``!`` inside quotes is literal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["QueryError", "ListSpec", "Term", "parse_q", "parse_sort", "apply_list", "SPECS"]


class QueryError(ValueError):
    """A ``sort`` or ``q`` parameter the API rejects (answered 400 with ``field``)."""

    def __init__(self, field: str, msg: str) -> None:
        super().__init__(msg)
        self.field = field
        self.msg = msg


@dataclass(frozen=True)
class ListSpec:
    """Which fields a list endpoint sorts and filters on."""

    sort_fields: tuple[str, ...]
    q_fields: tuple[str, ...]


SPECS = {
    "projects": ListSpec(("id", "user", "name", "created", "modified"), ("id", "user", "name")),
    "assets": ListSpec(("id", "filename", "size", "created", "modified"), ("id", "filename")),
    "jobs": ListSpec(("id", "name", "created", "started", "finished"), ("id", "name", "type", "state")),
    "workflows": ListSpec(("id", "created", "started", "finished"), ("id", "state")),
}

# A trailing "AND" also splits, leaving an empty (rejected) term.
_AND = re.compile(r"\s+AND(?:\s+|$)", re.IGNORECASE)
_SORT = re.compile(r"^\s*([A-Za-z_]+)\s*:\s*(1|-1)\s*$")


@dataclass(frozen=True)
class Term:
    """One parsed ``field:value`` term."""

    field: str
    value: str
    negate: bool
    pattern: re.Pattern[str] | None  # set when the value holds a wildcard

    def matches(self, text: str) -> bool:
        """Return whether ``text`` satisfies this term (negation applied)."""
        if self.pattern is not None:
            hit = self.pattern.fullmatch(text) is not None
        else:
            hit = text.casefold() == self.value.casefold()
        return hit != self.negate


def _split_and(q: str) -> list[str]:
    parts: list[str] = []
    buf: list[str] = []
    i, quoted = 0, False
    while i < len(q):
        ch = q[i]
        if ch == '"':
            quoted = not quoted
        elif not quoted:
            m = _AND.match(q, i)
            if m:
                parts.append("".join(buf))
                buf = []
                i = m.end()
                continue
        buf.append(ch)
        i += 1
    if quoted:
        raise QueryError("q", f"Unbalanced double quote in query '{q}'")
    parts.append("".join(buf))
    return parts


def parse_q(q: str, allowed: Sequence[str]) -> list[Term]:
    """Parse a ``q`` string into terms.

    Args:
        q: the query text.
        allowed: the fields this endpoint can be queried on.

    Returns:
        The terms, all of which must match.

    Raises:
        QueryError: on a malformed term or a field that is not allowed.
    """
    terms = []
    for part in _split_and(q):
        text = part.strip()
        if not text:
            raise QueryError("q", f"Empty term in query '{q}'")
        negate = False
        if text.startswith("!"):
            negate, text = True, text[1:].lstrip()
        name, sep, value = text.partition(":")
        name = name.strip()
        if not sep or not name:
            raise QueryError("q", f"Invalid query term '{part.strip()}': expected field:value")
        if name.lower() not in allowed:
            raise QueryError(
                "q", f"Cannot query on field '{name}'; allowed fields: {', '.join(allowed)}"
            )
        value = value.strip()
        if value.startswith("!"):
            negate, value = not negate, value[1:].lstrip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if '"' in value:
            raise QueryError("q", f"Invalid quoting in query term '{part.strip()}'")
        pattern = None
        if "*" in value:
            regex = ".*".join(re.escape(chunk) for chunk in value.split("*"))
            pattern = re.compile(regex, re.IGNORECASE | re.DOTALL)
        terms.append(Term(name.lower(), value, negate, pattern))
    return terms


def parse_sort(sort: str, allowed: Sequence[str]) -> tuple[str, bool]:
    """Parse ``field:1|-1``.

    Returns:
        ``(field, descending)``.

    Raises:
        QueryError: on bad syntax or a field that is not allowed.
    """
    m = _SORT.match(sort)
    if not m:
        raise QueryError(
            "sort", f"Invalid sort '{sort}': expected <field>:1 or <field>:-1"
        )
    name = m.group(1).lower()
    if name not in allowed:
        raise QueryError(
            "sort", f"Cannot sort on field '{m.group(1)}'; allowed fields: {', '.join(allowed)}"
        )
    return name, m.group(2) == "-1"


def _sort_key(value: Any) -> tuple:
    # Nulls sort last ascending (first descending), as in PostgreSQL.
    if value is None:
        return (1, 0)
    if isinstance(value, str):
        return (0, value.casefold())
    return (0, value)


def apply_list(
    items: Iterable[Any],
    spec: ListSpec,
    *,
    q: str | None = None,
    sort: str | None = None,
    text_of: Callable[[Any, str], str] | None = None,
) -> list[Any]:
    """Filter and order resource records the way the list endpoints do.

    Args:
        items: records with the attributes named in ``spec`` (``id`` an int).
        spec: the endpoint's allowed fields.
        q: the ``q`` parameter, or None/empty.
        sort: the ``sort`` parameter, or None/empty.
        text_of: how to read a field as text for ``q`` (default: ``str`` of the
            attribute, with None as the empty string).

    Raises:
        QueryError: on a bad ``q`` or ``sort``.
    """
    sort_field, descending = ("id", True)
    if sort:
        sort_field, descending = parse_sort(sort, spec.sort_fields)
    terms = parse_q(q, spec.q_fields) if q and q.strip() else []
    if text_of is None:
        text_of = _text_of
    rows = sorted(items, key=lambda r: r.id, reverse=True)
    for term in terms:
        rows = [r for r in rows if term.matches(text_of(r, term.field))]
    if sort_field != "id":
        # Stable sort: ties keep ID-descending order.
        rows.sort(key=lambda r: _sort_key(getattr(r, sort_field)), reverse=descending)
    elif not descending:
        rows.reverse()
    return rows


def _text_of(record: Any, name: str) -> str:
    value = getattr(record, name)
    return "" if value is None else str(value)
