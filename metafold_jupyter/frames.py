"""DataFrame helpers: API records -> pandas DataFrames with stable, typed columns.

Every helper returns the schema's leading columns in the same order and with the
same dtypes, whatever the API returned (none, one or many records); fields the API
adds come after them, untouched. Conversion is vectorised column by column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .kernel_session import session

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


def to_frame(records: Iterable[Mapping[str, Any]] | Mapping[str, Any], kind: str) -> pd.DataFrame:
    """Build the typed DataFrame of ``kind`` from API records (a single object is one row).

    Args:
        records: a list of JSON objects as the API returned them, or one object.
        kind: a key of :data:`SCHEMAS`, or ``"usage"`` / ``"quota"`` (one int64
            column per key the API returned).
    """
    if isinstance(records, Mapping):
        records = [records]
    elif not isinstance(records, list):
        records = list(records)
    if kind in ("usage", "quota"):
        return _counts_frame(records)
    schema = SCHEMAS[kind]
    lead = [name for name, _ in schema]
    raw = _columns(records, lead)  # dict: the schema's columns first
    columns: dict[str, Any] = {}
    for name, dtype in schema:
        values = raw.pop(name)
        if dtype != "duration":  # derived below, whatever the API sent
            columns[name] = _typed(values, dtype, len(records))
    if "duration" in lead:
        columns["duration"] = (columns["finished"] - columns["started"]).astype(TIMEDELTA)
    ordered = {name: columns[name] for name in lead}
    for name, values in raw.items():  # fields the API added: after the schema, as they came
        ordered[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(ordered)


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


def _typed(values: list[Any], dtype: str, n: int) -> pd.Series:
    if dtype == "string":
        return pd.Series(values, dtype="string") if n else pd.Series([], dtype="string")
    if dtype == "datetime":
        return pd.Series(parse_rfc1123(values), dtype=DATETIME)
    if dtype == "int64":
        series = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return series.astype("int64") if not series.isna().any() else series.astype("Int64")
    if dtype == "bool":
        series = pd.Series(values, dtype=object)
        return series.astype(bool) if not series.isna().any() else series.astype("boolean")
    return pd.Series(values, dtype=object)


_MONTH_KEYS = np.array([  # "Jan".."Dec" as 3 code points packed into one integer, in month order
    (ord(m[0]) << 16) | (ord(m[1]) << 8) | ord(m[2])
    for m in ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
])
_MONTH_ORDER = np.argsort(_MONTH_KEYS)
_DIGITS = {"day": (5, 7), "year": (12, 16), "hour": (17, 19), "minute": (20, 22), "second": (23, 25)}


def parse_rfc1123(values: list[Any]) -> np.ndarray:
    """RFC 1123 GMT strings -> ``datetime64[ns]`` (UTC), vectorised; NaT where missing.

    The API's dates have a fixed layout (``Tue, 04 Mar 2025 14:05:09 GMT``, 29
    characters), so the fields are read by position from a matrix of code points;
    anything else (another layout) goes through ``pd.to_datetime``.
    """
    n = len(values)
    out = np.full(n, np.datetime64("NaT", "ns"))  # a unit: numpy 2.5 deprecates the generic one
    if not n:
        return out
    # one more column than the layout needs: a longer string is not the layout
    grid = np.array(values, dtype="U30").view(np.uint32).reshape(n, 30).astype(np.int64)
    fixed = (grid[:, 3] == ord(",")) & (grid[:, 26] == ord("G")) & (grid[:, 28] == ord("T")) & (grid[:, 29] == 0)

    def number(a: int, b: int) -> np.ndarray:
        digits = grid[:, a:b] - ord("0")
        fixed[:] &= ((digits >= 0) & (digits <= 9)).all(axis=1)
        return (digits * 10 ** np.arange(b - a - 1, -1, -1)).sum(axis=1)

    parts = {name: number(a, b) for name, (a, b) in _DIGITS.items()}
    keys = (grid[:, 8] << 16) | (grid[:, 9] << 8) | grid[:, 10]
    slot = np.searchsorted(_MONTH_KEYS[_MONTH_ORDER], keys).clip(0, 11)
    month = _MONTH_ORDER[slot]
    fixed &= _MONTH_KEYS[month] == keys
    months = ((parts["year"] - 1970) * 12 + month).astype("datetime64[M]")
    stamps = (
        months.astype("datetime64[D]") + (parts["day"] - 1).astype("timedelta64[D]")
    ).astype("datetime64[s]") + (parts["hour"] * 3600 + parts["minute"] * 60 + parts["second"]).astype(
        "timedelta64[s]"
    )
    out[fixed] = stamps[fixed]
    rest = [i for i in np.flatnonzero(~fixed) if values[i] is not None]
    if rest:  # another layout: let pandas try, NaT if it cannot
        parsed = pd.to_datetime(pd.Series([values[i] for i in rest], dtype=object), utc=True, errors="coerce",
                                format="mixed")
        out[rest] = parsed.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return out


def _counts_frame(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    """One int64 column per key the API returned (the keys are open)."""
    columns = _columns(records, [])
    return pd.DataFrame({name: _typed(values, "int64", len(records)) for name, values in columns.items()})


def query_params(sort: str | None = None, q: str | None = None) -> dict[str, str] | None:
    params = {k: v for k, v in (("sort", sort), ("q", q)) if v}
    return params or None


# -- helpers (one row per resource) ------------------------------------------------


def usage() -> pd.DataFrame:
    """Lifetime usage counts: one int64 column per key (project, import, export, simulation...)."""
    return to_frame(session().get_json("/user/usage"), "usage")


def quota() -> pd.DataFrame:
    """Remaining quota: one int64 column per key."""
    return to_frame(session().get_json("/user/quota"), "quota")


def license() -> pd.DataFrame:  # noqa: A001 - the interface's name
    """The licence: product, issued, expires, expired."""
    return to_frame(session().get_json("/user/license"), "license")


def projects(sort: str | None = None, q: str | None = None) -> pd.DataFrame:
    """All projects, newest ID first; ``sort="name:1"``, ``q='name:"Lattice*"'``."""
    return to_frame(session().get_json("/projects", params=query_params(sort, q)), "projects")


def project(id: str | None = None) -> pd.DataFrame:  # noqa: A002 - the interface's name
    """One project (default: the session's default project) as a one-row frame."""
    s = session()
    return to_frame(s.get_json(f"/projects/{s.require_project(id)}"), "projects")


def assets(project: str | None = None, sort: str | None = None, q: str | None = None) -> pd.DataFrame:
    """The assets of a project (default: the session's default project)."""
    s = session()
    return to_frame(s.get_json(f"/projects/{s.require_project(project)}/assets", query_params(sort, q)), "assets")


def jobs(project: str | None = None, sort: str | None = None, q: str | None = None) -> pd.DataFrame:
    """The jobs of a project, with ``duration`` = finished - started."""
    s = session()
    return to_frame(s.get_json(f"/projects/{s.require_project(project)}/jobs", query_params(sort, q)), "jobs")


def workflows(project: str | None = None, sort: str | None = None, q: str | None = None) -> pd.DataFrame:
    """The workflows of a project, with ``duration`` = finished - started."""
    s = session()
    path = f"/projects/{s.require_project(project)}/workflows"
    return to_frame(s.get_json(path, query_params(sort, q)), "workflows")
