"""DataFrame helpers: API records -> pandas DataFrames with stable, typed columns.

Every helper returns the schema's leading columns in the same order and with the
same dtypes, whatever the API returned (none, one or many records); fields the API
adds come after them, untouched. Conversion is vectorised column by column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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
    raw = _columns(records, lead)
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
    keys = dict.fromkeys(lead)
    if records:
        first = records[0].keys()
        keys.update(dict.fromkeys(first))
        if any(r.keys() != first for r in records):  # rare: records with different keys
            for r in records:
                keys.update(dict.fromkeys(r))
    return {key: [r.get(key) for r in records] for key in keys}


def _typed(values: list[Any], dtype: str, n: int) -> pd.Series:
    if dtype == "string":
        return pd.Series(values, dtype="string") if n else pd.Series([], dtype="string")
    if dtype == "datetime":
        series = pd.Series(values, dtype=object)
        parsed = pd.to_datetime(series, format=RFC1123, utc=True, errors="coerce")
        return parsed.astype(DATETIME)
    if dtype == "int64":
        series = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
        return series.astype("int64") if not series.isna().any() else series.astype("Int64")
    if dtype == "bool":
        series = pd.Series(values, dtype=object)
        return series.astype(bool) if not series.isna().any() else series.astype("boolean")
    return pd.Series(values, dtype=object)


def _counts_frame(records: list[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records) if records else pd.DataFrame()
    for name in frame.columns:
        values = pd.to_numeric(frame[name], errors="coerce")
        frame[name] = values.astype("int64") if not values.isna().any() else values.astype("Int64")
    return frame


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
