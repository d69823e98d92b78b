"""Sandbox resource records (Project, Asset, Job, Workflow) and their JSON forms.

Records keep IDs as ints and times as POSIX floats so that sorting is numeric
and chronological; the API forms use numeric-string IDs and dates in the
current answer's style (RFC 1123 unless the sandbox answers in ISO 8601, see
``shape``), with exactly the keys of the contract (the official SDK rejects any
other key). Projects and assets cache their serialized JSON per date style, so
listing thousands of them is a string join.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .shape import current_style, format_date

__all__ = ["http_date", "utc", "Project", "Asset", "Job", "Workflow", "TERMINAL_STATES"]

TERMINAL_STATES = frozenset({"success", "failure", "canceled"})


def http_date(ts: float | None) -> str | None:
    """Format a POSIX time in the answer's date style: RFC 1123 in GMT (``Tue, 04 Mar 2025
    14:05:09 GMT``) by default, ISO 8601 (``2025-03-04T14:05:09+00:00``) when the sandbox
    answers so."""
    return format_date(ts)


def _cached_json(record: Any) -> str:
    # One slot keyed by the date style: a sandbox switched at runtime re-serializes once.
    dates = current_style().dates
    cached = record._json
    if cached is None or cached[0] != dates:
        cached = record._json = (dates, json.dumps(record.to_dict()))
    return cached[1]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> float:
    """Return the POSIX time of a UTC date and time (for deterministic seed data)."""
    return float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))


def _sid(value: int | None) -> str | None:
    return None if value is None else str(value)


@dataclass(eq=False)
class Project:
    """A project owned by ``user``."""

    id: int
    user: str
    name: str
    access: str
    type: str
    created: float
    modified: float
    thumbnail: str | None = None
    project: dict[str, Any] | None = None
    graph: dict[str, Any] | None = None
    _json: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the API form (exact contract keys)."""
        return {
            "id": str(self.id),
            "user": self.user,
            "name": self.name,
            "access": self.access,
            "type": self.type,
            "created": http_date(self.created),
            "modified": http_date(self.modified),
            "thumbnail": self.thumbnail,
            "project": self.project,
            "graph": self.graph,
        }

    def to_json(self) -> str:
        """Return the cached JSON text of :meth:`to_dict` (in the current date style)."""
        return _cached_json(self)

    def changed(self) -> None:
        """Drop the cached JSON after a mutation."""
        self._json = None


@dataclass(eq=False)
class Asset:
    """A file in a project; its bytes live at ``path`` on disk."""

    id: int
    project_id: int
    filename: str
    size: int
    checksum: str
    created: float
    modified: float
    path: Path
    job_id: int | None = None
    _json: tuple[str, str] | None = field(default=None, init=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Return the API form (exact contract keys, no ``link``)."""
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "checksum": self.checksum,
            "created": http_date(self.created),
            "modified": http_date(self.modified),
            "project_id": str(self.project_id),
            "job_id": _sid(self.job_id),
        }

    def to_json(self) -> str:
        """Return the cached JSON text of :meth:`to_dict` (in the current date style)."""
        return _cached_json(self)


# Input asset references: ("asset", asset_id) for a project file, or
# ("output", job_id, output_name) for an upstream job's output.
AssetRef = tuple


@dataclass(eq=False)
class Job:
    """One job of a workflow (or a stand-alone legacy job when ``workflow_id`` is None).

    ``plan_start``/``plan_finish`` hold the schedule; ``state``, ``started`` and
    ``finished`` are what has been observed so far (see ``workflows.advance``).
    """

    id: int
    project_id: int
    name: str | None
    type: str
    created: float
    workflow_id: int | None = None
    needs: list[int] = field(default_factory=list)
    input_params: dict[str, str] = field(default_factory=dict)
    input_assets: dict[str, AssetRef] = field(default_factory=dict)
    state: str = "pending"
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    output_params: dict[str, str] | None = None
    output_assets: dict[str, int] | None = None
    meta: dict[str, Any] | None = None
    plan_start: float = 0.0
    plan_finish: float = 0.0
    fail_error: str | None = None

    def to_dict(self, asset_of: Callable[[int], Asset | None], job_of: Callable[[int], Job | None]) -> dict[str, Any]:
        """Return the API form.

        Args:
            asset_of: looks an asset up by ID (deleted assets are left out).
            job_of: looks a job up by ID (to resolve upstream outputs used as inputs).
        """
        inputs_assets: dict[str, Any] = {}
        for name, ref in self.input_assets.items():
            asset = None
            if ref[0] == "asset":
                asset = asset_of(ref[1])
            else:
                upstream = job_of(ref[1])
                if upstream is not None and upstream.output_assets and ref[2] in upstream.output_assets:
                    asset = asset_of(upstream.output_assets[ref[2]])
            if asset is not None:
                inputs_assets[name] = asset.to_dict()
        outputs_assets = None
        generated: list[dict[str, Any]] = []
        if self.output_assets is not None:
            outputs_assets = {}
            for name, asset_id in self.output_assets.items():
                asset = asset_of(asset_id)
                if asset is not None:
                    outputs_assets[name] = asset.to_dict()
                    generated.append(outputs_assets[name])
        params = dict(self.input_params) or None
        return {
            "id": str(self.id),
            "name": self.name,
            "type": self.type,
            "state": self.state,
            "created": http_date(self.created),
            "started": http_date(self.started),
            "finished": http_date(self.finished),
            "error": self.error,
            "inputs": {"params": params, "assets": inputs_assets or None},
            "outputs": {
                "params": None if self.output_params is None else dict(self.output_params),
                "assets": outputs_assets,
            },
            "needs": [str(n) for n in self.needs],
            "project_id": str(self.project_id),
            "workflow_id": _sid(self.workflow_id),
            "assets": generated,
            "parameters": params,
            "meta": self.meta,
        }


@dataclass(eq=False)
class Workflow:
    """A dispatched workflow; ``job_ids`` are in execution (topological) order."""

    id: int
    project_id: int
    definition: str
    created: float
    duration: float
    job_ids: list[int] = field(default_factory=list)
    state: str = "pending"
    started: float | None = None
    finished: float | None = None

    @property
    def done(self) -> bool:
        """True once the workflow reached success, failure or canceled."""
        return self.state in TERMINAL_STATES

    def to_dict(self, link: str | None = None) -> dict[str, Any]:
        """Return the API form; ``link`` is added only when given (dispatch and status)."""
        data = {
            "id": str(self.id),
            "jobs": [str(j) for j in self.job_ids],
            "state": self.state,
            "created": http_date(self.created),
            "started": http_date(self.started),
            "finished": http_date(self.finished),
            "definition": self.definition,
            "project_id": str(self.project_id),
        }
        if link is not None:
            data["link"] = link
        return data
