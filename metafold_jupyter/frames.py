"""DataFrame helpers: API records -> pandas DataFrames with stable, typed columns.

Every helper returns the schema's leading columns in the same order and with the
same dtypes, whatever the API returned (none, one or many records); fields the API
adds come after them, untouched. Conversion is vectorised column by column.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from types import FrameType
from typing import Any

import numpy as np
import pandas as pd

from .answers import as_records
from .kernel_session import session
from .paths import api_path

RFC1123 = "%a, %d %b %Y %H:%M:%S GMT"
DATETIME = "datetime64[ns, UTC]"
TIMEDELTA = "timedelta64[ns]"

#: Leading columns and dtypes of every helper (interface.md, "DataFrame schemas").
#: Kinds: string, datetime, int64, bool, object; ``duration`` is derived.
SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "projects": (
        ("id", "string"),
        ("name", "string"),
        ("user", "string"),
        ("access", "string"),
        ("type", "string"),
        ("created", "datetime"),
        ("modified", "datetime"),
        ("thumbnail", "string"),
    ),
    "assets": (
        ("id", "string"),
        ("filename", "string"),
        ("size", "int64"),
        ("checksum", "string"),
        ("created", "datetime"),
        ("modified", "datetime"),
        ("project_id", "string"),
        ("job_id", "string"),
    ),
    "jobs": (
        ("id", "string"),
        ("name", "string"),
        ("type", "string"),
        ("state", "string"),
        ("created", "datetime"),
        ("started", "datetime"),
        ("finished", "datetime"),
        ("duration", "duration"),
        ("error", "string"),
        ("project_id", "string"),
        ("workflow_id", "string"),
        ("needs", "object"),
        ("inputs", "object"),
        ("outputs", "object"),
    ),
    "workflows": (
        ("id", "string"),
        ("state", "string"),
        ("created", "datetime"),
        ("started", "datetime"),
        ("finished", "datetime"),
        ("duration", "duration"),
        ("project_id", "string"),
        ("jobs", "object"),
        ("definition", "string"),
    ),
    "license": (
        ("product", "string"),
        ("issued", "datetime"),
        ("expires", "datetime"),
        ("expired", "bool"),
    ),
}
SCHEMAS["project"] = SCHEMAS["projects"]


class SchemaWarning(UserWarning):
    """Some values did not fit their column's type and are shown as missing (``<NA>``/``NaT``)."""


def to_frame(records: Iterable[Mapping[str, Any]] | Mapping[str, Any], kind: str) -> pd.DataFrame:
    """Build the typed DataFrame of ``kind`` from API records (a single object is one row).

    A value that does not fit its column's type (a size of ``2**70`` or ``1.5``,
    ``"no"`` for a bool, an epoch number for a date) becomes missing, never a
    wrong value, and one :class:`SchemaWarning` names the columns concerned.

    Args:
        records: a list of JSON objects as the API returned them, or one object.
        kind: a key of :data:`SCHEMAS`, or ``"usage"`` / ``"quota"`` (one int64
            column per key the API returned).

    Raises:
        TypeError: ``records`` is neither an object nor a list of objects
            (the helpers turn this into an :class:`APIError` naming the endpoint).
    """
    records = as_records(records)
    if kind in ("usage", "quota"):
        return _counts_frame(records, kind)
    schema = SCHEMAS[kind]
    lead = [name for name, _ in schema]
    raw = _columns(records, lead)  # dict: the schema's columns first
    columns: dict[str, Any] = {}
    misfits: dict[str, tuple[str, int]] = {}
    for name, dtype in schema:
        values = raw.pop(name)
        if dtype != "duration":  # derived below, whatever the API sent
            columns[name], bad = _typed(values, dtype)
            if bad:
                misfits[name] = (dtype, bad)
    if "duration" in lead:
        columns["duration"] = (columns["finished"] - columns["started"]).astype(TIMEDELTA)
    ordered = {name: columns[name] for name in lead}
    for name, values in raw.items():  # fields the API added: after the schema, as they came
        ordered[name] = pd.Series(values, dtype=object)
    _warn_misfits(kind, misfits)
    return pd.DataFrame(ordered, copy=False)  # every column was built here: nothing to protect by copying


def _columns(records: list[Mapping[str, Any]], lead: list[str]) -> dict[str, list[Any]]:
    """Column lists: the schema's first, then any other key in order of first appearance."""
    n = len(records)
    if not n:
        return {key: [] for key in lead}
    first = list(records[0])
    try:
        columns = {key: [r[key] for r in records] for key in first}
        # every record has the first one's keys; equal sizes mean no record has more
        uniform = sum(map(len, records)) == n * len(first)
    except KeyError:
        uniform = False
    if not uniform:  # rare: records with different keys
        keys = dict.fromkeys(first)
        for r in records:
            keys.update(dict.fromkeys(r))
        columns = {key: [r.get(key) for r in records] for key in keys}
    missing = [None] * n
    ordered = {key: columns.pop(key, missing) for key in lead}
    ordered.update(columns)
    return ordered


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INTEGER_TEXT = re.compile(r"[+-]?[0-9]+")
#: what a value that does not fit is not, per column kind (for the warning)
_EXPECTED = {"string": "text", "datetime": "a date", "int64": "a 64-bit integer", "bool": "true/false"}


def _typed(values: list[Any], dtype: str) -> tuple[pd.Series, int]:
    """The column as ``dtype``, and how many values did not fit (they are missing now)."""
    if dtype == "string":
        return _strings(values)
    if dtype == "datetime":
        stamps, bad = parse_dates(values)
        return pd.Series(stamps, dtype=DATETIME), bad
    if dtype == "int64":
        return _integers(values)
    if dtype == "bool":
        return _booleans(values)
    return pd.Series(values, dtype=object), 0


def _strings(values: list[Any]) -> tuple[pd.Series, int]:
    kinds = set(map(type, values))
    if kinds == {type(None)}:  # a column the API leaves empty (thumbnail): ten times faster than from the list
        return pd.Series(index=pd.RangeIndex(len(values)), dtype="string"), 0
    if kinds <= {str, type(None)}:  # the usual case: one pass in C
        return pd.Series(values, dtype="string"), 0
    out: list[Any] = []
    bad = 0
    for v in values:
        if v is None or isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):  # an ID sent as a number: its text
            out.append(None if v != v else str(v))  # NaN is missing
        else:  # an object, a list, a boolean: not text
            out.append(None)
            bad += 1
    return pd.Series(out, dtype="string"), bad


def _integers(values: list[Any]) -> tuple[pd.Series, int]:
    if set(map(type, values)) <= {int}:  # the usual case; bool is a type of its own here
        try:
            return pd.Series(np.array(values, dtype=np.int64)), 0
        except OverflowError:  # beyond int64: sort them out one by one below
            pass
    out = np.zeros(len(values), dtype=np.int64)
    missing = np.zeros(len(values), dtype=bool)
    bad = 0
    for i, v in enumerate(values):
        number = _as_int64(v)
        if number is None:
            missing[i] = True
            bad += v is not None
        else:
            out[i] = number
    if missing.any():
        return pd.Series(pd.arrays.IntegerArray(out, missing)), bad
    return pd.Series(out), bad


def _as_int64(value: Any) -> int | None:
    """The integer a JSON value stands for, or None (missing, fractional, too large, not a number)."""
    kind = type(value)
    if kind is int:
        number = value
    elif kind is float and value.is_integer():  # 3.0 is 3; 1.5 and NaN are not integers
        number = int(value)
    elif kind is str and len(value) <= 40 and _INTEGER_TEXT.fullmatch(value.strip()):  # int() refuses huge texts
        number = int(value)
    else:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None


def _booleans(values: list[Any]) -> tuple[pd.Series, int]:
    kinds = set(map(type, values))
    if kinds <= {bool}:
        return pd.Series(np.array(values, dtype=bool)), 0
    # only JSON true/false are booleans: "no", 0 or "false" are not guessed at
    out = [v if type(v) is bool else None for v in values]
    bad = sum(1 for v in values if v is not None and type(v) is not bool)
    return pd.Series(out, dtype="boolean"), bad


def _warn_misfits(kind: str, misfits: Mapping[str, tuple[str, int]]) -> None:
    """One warning for the whole frame, naming each column and how many values did not fit."""
    if not misfits:
        return
    parts = [
        f"{count} value{'s' if count > 1 else ''} of {name!r} {'are' if count > 1 else 'is'} not {_EXPECTED[dtype]}"
        for name, (dtype, count) in misfits.items()
    ]
    warnings.warn(
        f"{kind}: {', '.join(parts)}; shown as missing (<NA>/NaT) instead of a wrong value",
        SchemaWarning,
        stacklevel=_caller_stacklevel(),
    )


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside this package (so the warning points at the user's line)."""
    package = __name__.rpartition(".")[0]
    frame: FrameType | None = sys._getframe(1)
    level = 1
    while frame is not None and (frame.f_globals.get("__name__") or "").startswith(package):
        frame, level = frame.f_back, level + 1
    return level


# -- dates -------------------------------------------------------------------------------

_MONTH_KEYS = np.array([  # "Jan".."Dec" as 3 code points packed into one integer, in month order
    (ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2])
    for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
])
_MONTH_ORDER = np.argsort(_MONTH_KEYS)
# datetime64[ns] spans 1677-09-21 .. 2262-04-11; anything outside would wrap around silently
_NS_FIRST = np.datetime64("1677-09-22T00:00:00", "s")
_NS_LAST = np.datetime64("2262-04-10T23:59:59", "s")
_NAT = np.datetime64("NaT", "ns")
_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))  # two guesses dateutil must not need


def parse_dates(values: Sequence[Any]) -> tuple[np.ndarray, int]:
    """API dates -> ``datetime64[ns]`` (UTC), and how many values were not dates.

    Both layouts the API is documented with are read vectorised, by position from
    a matrix of code points: RFC 1123 (``Tue, 04 Mar 2025 14:05:09 GMT``, what
    the service sends) and the reference's ISO 8601 (``2025-03-04T14:05:09+00:00``,
    any ``±HH:MM`` offset or ``Z``). Other ISO 8601 forms (fractions of a second,
    no offset, a date alone) go through pandas' own ISO 8601 parser, and strings
    none of these can read get a strict per-value fallback (a date missing its
    year, month or day is not guessed). The first value's layout decides which
    reader goes first; each reader gets only what the previous ones left.

    ``None`` is missing; anything else that is not a date (a number, an
    impossible day or hour, a year ``datetime64[ns]`` cannot hold) is missing
    too, and counted.
    """
    n = len(values)
    out = np.full(n, _NAT)
    if not n:
        return out, 0
    where: np.ndarray | None = None
    texts: list[str]
    if set(map(type, values)) <= {str}:
        texts, bad = list(values) if not isinstance(values, list) else values, 0
    else:
        positions = [i for i, v in enumerate(values) if type(v) is str]
        where = np.array(positions, dtype=np.intp)
        texts = [values[i] for i in positions]
        bad = n - len(positions) - sum(1 for v in values if v is None)
        if not texts:
            return out, bad
    parsed = np.full(len(texts), _NAT)
    todo = np.arange(len(texts))
    if texts[0].endswith("GMT"):
        readers = (_rfc1123, _iso8601_fixed, _iso8601, _other_layout)
    else:
        readers = (_iso8601_fixed, _iso8601, _rfc1123, _other_layout)
    for reader in readers:
        subset = texts if len(todo) == len(texts) else [texts[i] for i in todo]
        stamps, ok = reader(subset)
        parsed[todo[ok]] = stamps[ok]
        todo = todo[~ok]
        if not len(todo):
            break
    bad += len(todo)
    if where is None:
        return parsed, bad
    out[where] = parsed
    return out, bad


class _Layout:
    """A fixed-width date layout, read by position from a matrix of code points.

    Args:
        width: the layout's length (one more column is read, so that a longer
            string is seen not to be the layout).
        literals: column -> the character that must be there.
        fields: name -> (first, end) columns of a decimal field.
    """

    def __init__(self, width: int, literals: Mapping[int, str], fields: Mapping[str, tuple[int, int]]) -> None:
        self.width = width
        self.literal_columns = np.array(list(literals), dtype=np.intp)
        self.literal_codes = np.array([ord(c) for c in literals.values()], dtype=np.uint32)
        self.digit_columns = np.array([i for a, b in fields.values() for i in range(a, b)], dtype=np.intp)
        # one matrix product turns the digits of every field into the fields' values; in float64 (BLAS,
        # several times faster than an integer product) it is exact: every sum stays far below 2**53
        self.weights = np.zeros((len(self.digit_columns), len(fields)), dtype=np.float64)
        row = 0
        for j, (a, b) in enumerate(fields.values()):
            for k in range(b - a):
                self.weights[row, j] = 10 ** (b - a - 1 - k)
                row += 1
        self.names = list(fields)

    def codes(self, texts: list[str]) -> np.ndarray:
        """The strings' code points, one row each (zeros after a string's end)."""
        return np.array(texts, dtype=f"U{self.width + 1}").view(np.uint32).reshape(len(texts), self.width + 1)

    def read(self, codes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The fields' values, and which rows fit the layout."""
        ok = codes[:, self.width] == 0
        ok &= (codes[:, self.literal_columns] == self.literal_codes).all(axis=1)
        digits = codes[:, self.digit_columns] - np.uint32(ord("0"))  # unsigned: below "0" wraps to a large number
        ok &= (digits < 10).all(axis=1)
        values = (digits.astype(np.float64) @ self.weights).astype(np.int64)
        return {name: values[:, j] for j, name in enumerate(self.names)}, ok


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_FIRST_SECOND = int(_NS_FIRST.astype(np.int64))
_LAST_SECOND = int(_NS_LAST.astype(np.int64))


def _stamps(f: Mapping[str, np.ndarray], ok: np.ndarray, offset: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
    """UTC ``datetime64[ns]`` of the fields (year, month 1-12, day, hour, minute, second; ``offset`` in
    seconds east of UTC) and which rows are ok: ``ok`` so far, and a real date and time in range."""
    year, month, day = f["year"], f["month"], f["day"]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    last_day = _DAYS_IN_MONTH[np.where(month_ok, month, 0)] + (leap & (month == 2))
    ok = ok & month_ok & (day >= 1) & (day <= last_day)  # 31 Feb is not a date
    ok &= (f["hour"] < 24) & (f["minute"] < 60) & (f["second"] < 60)
    # days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil), vectorised
    y = year - (month <= 2)
    era = y // 400
    yoe = y - era * 400
    doy = (153 * ((month + 9) % 12) + 2) // 5 + day - 1
    days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
    seconds = days * 86400 + f["hour"] * 3600 + f["minute"] * 60 + f["second"] - offset
    ok &= (seconds >= _FIRST_SECOND) & (seconds <= _LAST_SECOND)  # what datetime64[ns] holds
    return np.where(ok, seconds * 1_000_000_000, np.iinfo(np.int64).min).view("datetime64[ns]"), ok


_RFC1123_LAYOUT = _Layout(  # Tue, 04 Mar 2025 14:05:09 GMT
    29,
    {3: ",", 4: " ", 7: " ", 11: " ", 16: " ", 19: ":", 22: ":", 25: " ", 26: "G", 27: "M", 28: "T"},
    {"day": (5, 7), "year": (12, 16), "hour": (17, 19), "minute": (20, 22), "second": (23, 25)},
)
_ISO8601_LAYOUT = _Layout(  # 2025-03-04T14:05:09+00:00 (any offset) or 2025-03-04T14:05:09Z
    25,
    {4: "-", 7: "-", 10: "T", 13: ":", 16: ":"},
    {"year": (0, 4), "month": (5, 7), "day": (8, 10), "hour": (11, 13), "minute": (14, 16), "second": (17, 19)},
)
_OFFSET_LAYOUT = _Layout(25, {22: ":"}, {"hours": (20, 22), "minutes": (23, 25)})


def _rfc1123(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``Tue, 04 Mar 2025 14:05:09 GMT`` (29 characters)."""
    codes = _RFC1123_LAYOUT.codes(texts)
    fields, ok = _RFC1123_LAYOUT.read(codes)
    keys = (codes[:, 8].astype(np.int64) << 16) | (codes[:, 9].astype(np.int64) << 8) | codes[:, 10]
    month0 = _MONTH_ORDER[np.searchsorted(_MONTH_KEYS[_MONTH_ORDER], keys).clip(0, 11)]
    ok &= _MONTH_KEYS[month0] == keys
    return _stamps({**fields, "month": month0 + 1}, ok)


def _iso8601_fixed(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``2025-03-04T14:05:09+00:00`` (any ``±HH:MM``, 25 characters) or ``2025-03-04T14:05:09Z`` (20)."""
    codes = _ISO8601_LAYOUT.codes(texts)
    fields, ok = _ISO8601_LAYOUT.read(codes)
    offset, shifted = _OFFSET_LAYOUT.read(codes)
    sign = codes[:, 19]
    zulu = (sign == ord("Z")) & (codes[:, 20] == 0)
    shifted &= ((sign == ord("+")) | (sign == ord("-"))) & (offset["hours"] < 24) & (offset["minutes"] < 60)
    ok &= zulu | shifted
    east = np.where(zulu, 0, np.where(sign == ord("-"), -1, 1) * (offset["hours"] * 3600 + offset["minutes"] * 60))
    return _stamps(fields, ok, east)


def _iso8601(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 in its other forms (fractions, no offset, a date alone), through pandas' C parser."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas' notes on coerced values: we count them ourselves
        parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
    # naive UTC in pandas' own resolution (ns on pandas 2, often us on pandas 3), without a copy
    stamps = parsed.asi8.view(f"datetime64[{parsed.unit}]")
    ok = ~np.isnat(stamps)
    seconds = stamps.astype("datetime64[s]")
    ok &= (seconds >= _NS_FIRST) & (seconds <= _NS_LAST)
    # out of range becomes NaT before the cast: numpy >= 2.5 raises OverflowError on it
    result = np.where(ok, stamps, np.datetime64("NaT", parsed.unit)).astype("datetime64[ns]")
    return result, ok


def _other_layout(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Any other layout, one value at a time; only complete dates count (nothing is guessed)."""
    stamps = np.full(len(texts), _NAT)
    ok = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        stamp = _one_date(text)
        if stamp is not None:
            stamps[i], ok[i] = stamp, True
    return stamps, ok


def _one_date(text: str) -> np.datetime64 | None:
    from dateutil import parser as dateutil_parser

    if text.strip().lstrip("+-").isdigit():  # an epoch number in a string: which unit? not guessed
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an unknown zone name would otherwise be dropped silently
            first, second = [dateutil_parser.parse(text, default=d) for d in _DEFAULTS]
        if first != second:  # the year, month or day came from the default: not a complete date
            return None
        if first.tzinfo is not None:
            first = first.astimezone(timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, Warning):  # not a date, or an impossible offset or field
        return None
    stamp = np.datetime64(first, "us")
    if not _NS_FIRST <= stamp.astype("datetime64[s]") <= _NS_LAST:
        return None
    return stamp.astype("datetime64[ns]")


def _counts_frame(records: list[Mapping[str, Any]], kind: str) -> pd.DataFrame:
    """One int64 column per key the API returned (the keys are open)."""
    typed: dict[str, pd.Series] = {}
    misfits: dict[str, tuple[str, int]] = {}
    for name, values in _columns(records, []).items():
        typed[name], bad = _integers(values)
        if bad:
            misfits[name] = ("int64", bad)
    _warn_misfits(kind, misfits)
    return pd.DataFrame(typed)


def query_params(sort: str | None = None, q: str | None = None) -> dict[str, str] | None:
    params = {k: v for k, v in (("sort", sort), ("q", q)) if v}
    return params or None


# -- helpers (one row per resource) ------------------------------------------------


def usage() -> pd.DataFrame:
    """Lifetime usage counts: one int64 column per key (project, import, export, simulation...)."""
    return to_frame(session().get_object("/user/usage"), "usage")


def quota() -> pd.DataFrame:
    """Remaining quota: one int64 column per key."""
    return to_frame(session().get_object("/user/quota"), "quota")


def license() -> pd.DataFrame:  # noqa: A001 - the interface's name
    """The licence: product, issued, expires, expired."""
    return to_frame(session().get_object("/user/license"), "license")


def projects(sort: str | None = None, q: str | None = None) -> pd.DataFrame:
    """All projects, newest ID first; ``sort="name:1"``, ``q='name:"Lattice*"'``."""
    return to_frame(session().get_records("/projects", query_params(sort, q)), "projects")


def project(id: str | None = None) -> pd.DataFrame:  # noqa: A002 - the interface's name
    """One project (default: the session's default project) as a one-row frame."""
    s = session()
    return to_frame(s.get_object(api_path("/projects/{pid}", pid=s.require_project(id))), "projects")


def assets(
    project: str | None = None, sort: str | None = None, q: str | None = None, *,
    all_projects: bool = False, on_error: str = "raise", progress: bool | None = None,
) -> pd.DataFrame:
    """The assets of a project (default: the session's default project), or of every project.

    ``all_projects=True`` fetches every project's list concurrently (``Session.concurrency``)
    into one frame; ``on_error`` and ``progress`` apply to it (see :func:`jobs`).
    """
    if all_projects:
        return _account("assets", project, sort, q, on_error, progress)
    s = session()
    path = api_path("/projects/{pid}/assets", pid=s.require_project(project))
    return to_frame(s.get_records(path, query_params(sort, q)), "assets")


def jobs(
    project: str | None = None, sort: str | None = None, q: str | None = None, *,
    all_projects: bool = False, on_error: str = "raise", progress: bool | None = None,
) -> pd.DataFrame:
    """The jobs of a project, with ``duration`` = finished - started.

    Args:
        all_projects: every project's jobs in one frame (``project_id`` tells them
            apart), fetched concurrently; ``sort`` orders the combined frame and ``q``
            filters every project's list.
        on_error: with ``all_projects``, when some projects fail: ``"raise"``
            :class:`~metafold_jupyter.errors.PartialResultError` (with ``.frame`` and
            ``.failures``) or ``"warn"`` and return the rows that came back.
        progress: ``False`` hides the progress bar of ``all_projects``.
    """
    if all_projects:
        return _account("jobs", project, sort, q, on_error, progress)
    s = session()
    path = api_path("/projects/{pid}/jobs", pid=s.require_project(project))
    return to_frame(s.get_records(path, query_params(sort, q)), "jobs")


def workflows(
    project: str | None = None, sort: str | None = None, q: str | None = None, *,
    all_projects: bool = False, on_error: str = "raise", progress: bool | None = None,
) -> pd.DataFrame:
    """The workflows of a project (or of every project, see :func:`jobs`), with ``duration``."""
    if all_projects:
        return _account("workflows", project, sort, q, on_error, progress)
    s = session()
    path = api_path("/projects/{pid}/workflows", pid=s.require_project(project))
    return to_frame(s.get_records(path, query_params(sort, q)), "workflows")


def _account(kind: str, project: str | None, sort: str | None, q: str | None, on_error: str,
             progress: bool | None) -> pd.DataFrame:
    from .fanout import account_frame  # the account-wide fan-out lives in its own module

    return account_frame(kind, project=project, sort=sort, q=q, on_error=on_error, progress=progress)
