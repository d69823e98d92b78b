"""Lifecycle operations: create, duplicate, rename, cancel and delete (the SDK's writes).

Layer: beside ``frames`` and ``operations`` (it uses the kernel session and
``frames.to_frame``). Every call returns one-row frames in the existing schemas;
IDs become path segments through :func:`paths.api_path` only.

Writes are sent once: the transport never sends a POST, PATCH or DELETE again
after the server may have acted on it (``transport.WriteOnceRetry``), and only a
401 — a refusal — is replayed, once, with a fresh token. When a write gets no
answer at all, the error says to look before trying again.

The delete functions first fetch the resource (a read), then delete it, and
return its row as it was just before: a user sees what went, and an unknown ID
fails with the API's 404 before anything is sent that could delete.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any

import pandas as pd

from .answers import object_of
from .errors import APIError, InvalidValueError, TransportError
from .frames import to_frame
from .kernel_session import Session, session
from .paths import api_path, segment

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = [
    "ACCESS_VALUES",
    "KINDS",
    "DefaultProjectCleared",
    "create_project",
    "duplicate_project",
    "update_project",
    "delete_project",
    "job",
    "workflow",
    "cancel_workflow",
    "delete_asset",
    "delete_job",
    "delete_workflow",
    "lookup",
    "delete",
    "describe",
]

_LOGGER = logging.getLogger(__name__)

#: The values of a project's ``access`` (metafold-api.md, "Resources").
ACCESS_VALUES = ("private", "public", "org")

#: What can be deleted: kind -> (path template, frame schema, what lists them).
KINDS: dict[str, tuple[str, str, str]] = {
    "project": ("/projects/{pid}", "projects", "mf.projects() (%metafold projects)"),
    "asset": ("/projects/{pid}/assets/{rid}", "assets", "mf.assets() (%metafold assets)"),
    "job": ("/projects/{pid}/jobs/{rid}", "jobs", "mf.jobs() (%metafold jobs)"),
    "workflow": ("/projects/{pid}/workflows/{rid}", "workflows", "mf.workflows() (%metafold workflows)"),
}
_ID_LABEL = {"asset": "asset ID", "job": "job ID", "workflow": "workflow ID"}


class DefaultProjectCleared(UserWarning):
    """The deleted project was the session's default project: no default is set now."""


# -- projects -----------------------------------------------------------------------


def create_project(name: str, *, access: str = "private", type: str | None = None) -> pd.DataFrame:  # noqa: A002
    """Create a project and return its one-row frame.

    Args:
        name: the project's name.
        access: ``"private"`` (default), ``"public"`` or ``"org"``.
        type: the project type (``"unspecified"``, ``"digital_test_bench_experiment"``);
            ``None`` lets the API choose.

    Raises:
        InvalidValueError: an empty name or another ``access`` (nothing is sent).
        APIError: the API refused (its message says why, e.g. the project quota).
    """
    payload: dict[str, Any] = {"name": _check_name(name), "access": _check_access(access)}
    if type is not None:
        payload["type"] = str(type)
    s = session()
    return _project_frame(_write(s, "POST", "/projects", "project", json=payload))


def duplicate_project(source: str, name: str, *, access: str | None = None) -> pd.DataFrame:
    """Copy project ``source`` (its data and graph) into a new project called ``name``.

    Args:
        source: the ID of the project to copy.
        name: the new project's name.
        access: the new project's access; ``None`` lets the API choose (private).

    Returns:
        The new project's one-row frame.

    Raises:
        InvalidValueError: an empty name or another ``access`` (nothing is sent).
        InvalidIdError: ``source`` is not a plain ID.
        APIError: the API refused, e.g. an unknown ``source``.
    """
    payload: dict[str, Any] = {"source": _plain_id(source, "project ID"), "name": _check_name(name)}
    if access is not None:
        payload["access"] = _check_access(access)
    s = session()
    return _project_frame(_write(s, "POST", "/projects", "project", json=payload))


def update_project(  # noqa: A002 - the interface's names
    id: str | None = None, *, name: str | None = None, access: str | None = None
) -> pd.DataFrame:
    """Rename a project and/or change its access (default: the session's default project).

    Returns:
        The updated project's one-row frame.

    Raises:
        InvalidValueError: nothing to change, an empty name or another ``access``.
        ConfigError: no ``id`` and no default project.
        APIError: the API refused (404 for an unknown ID).
    """
    payload: dict[str, Any] = {}
    if name is not None:
        payload["name"] = _check_name(name)
    if access is not None:
        payload["access"] = _check_access(access)
    if not payload:
        raise InvalidValueError("nothing to update", hint="pass name=... and/or access=...")
    s = session()
    path = api_path("/projects/{pid}", pid=s.require_project(id))
    return _project_frame(_write(s, "PATCH", path, "project", json=payload))


def delete_project(id: str) -> pd.DataFrame:  # noqa: A002
    """Delete a project with its assets, jobs and workflows.

    Deleting the session's default project also clears the default (and warns
    :class:`DefaultProjectCleared`), so later calls do not aim at a project
    that no longer exists.

    Returns:
        The project's one-row frame as it was just before the delete.

    Raises:
        APIError: unknown ID (404, before anything is deleted) or the API refused.
    """
    s = session()
    pid = _plain_id(id, "project ID")
    row = _delete(s, "project", pid, pid)
    if s.project_id is not None and str(s.project_id).strip() == pid:
        s.use_project(None)
        warnings.warn(
            f"project {pid} was the default project; no default project is set now "
            "(choose one with %metafold project ID or mf.session().use_project(ID))",
            DefaultProjectCleared,
            stacklevel=2,
        )
    return row


# -- jobs, workflows, assets ---------------------------------------------------------------


def job(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """One job as a one-row frame (default project unless ``project`` is given)."""
    return lookup("job", id, project)


def workflow(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """One workflow as a one-row frame (default project unless ``project`` is given)."""
    return lookup("workflow", id, project)


def cancel_workflow(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """Cancel a running workflow and return its row (state ``canceled``).

    Raises:
        APIError: unknown ID (404), or the workflow already finished (the API's
            message says in which state).
    """
    s = session()
    path = api_path("/projects/{pid}/workflows/{wid}/cancel", pid=s.require_project(project), wid=id)
    try:
        resp = _write(s, "POST", path, "workflow")
    except APIError as exc:
        if exc.status in (400, 409):  # the API's answer once a workflow has finished
            raise APIError(
                exc.status, exc.method, exc.url, exc.message,
                hint=f"a finished workflow cannot be cancelled; see its state with mf.workflow({str(id)!r})",
            ) from None
        raise
    return to_frame(object_of(resp), "workflows")


def delete_asset(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """Delete an asset (and its file); returns its row as it was just before."""
    s = session()
    return _delete(s, "asset", s.require_project(project), id)


def delete_job(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """Delete a job; returns its row as it was just before."""
    s = session()
    return _delete(s, "job", s.require_project(project), id)


def delete_workflow(id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """Delete a workflow (the API deletes its jobs too); returns its row as it was just before."""
    s = session()
    return _delete(s, "workflow", s.require_project(project), id)


# -- by kind (the magics' ``delete KIND ID``) -------------------------------------------------


def lookup(kind: str, id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """The one-row frame of a project, asset, job or workflow (a read)."""
    template, schema, _ = _kind(kind)
    s = session()
    pid = _plain_id(id, "project ID") if kind == "project" else s.require_project(project)
    return to_frame(s.get_object(_path(kind, template, pid, id)), schema)


def delete(kind: str, id: str, project: str | None = None) -> pd.DataFrame:  # noqa: A002
    """``delete_project``, ``delete_asset``, ``delete_job`` or ``delete_workflow`` by ``kind``."""
    _kind(kind)
    if kind == "project":
        return delete_project(id)
    return {"asset": delete_asset, "job": delete_job, "workflow": delete_workflow}[kind](id, project)


def describe(kind: str, row: pd.DataFrame) -> str:
    """A short description of a resource for messages: ``project 12 'Scratch'``."""
    record = row.iloc[0]
    rid = record["id"]
    if kind == "project":
        return f"project {rid} {record['name']!r}"
    where = f" of project {record['project_id']}"
    if kind == "asset":
        return f"asset {rid} {record['filename']!r} ({int(record['size']):,} bytes){where}"
    if kind == "job":
        return f"job {rid} {_text(record['name'])!r} ({_text(record['state'])}){where}"
    jobs = record["jobs"]
    count = len(jobs) if isinstance(jobs, list) else 0
    return f"workflow {rid} ({_text(record['state'])}, {count} job{'s' if count != 1 else ''}){where}"


# -- plumbing ---------------------------------------------------------------------------------


def _kind(kind: str) -> tuple[str, str, str]:
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidValueError(
            f"cannot delete a {kind!r}", hint=f"choose one of: {', '.join(KINDS)}"
        ) from None


def _path(kind: str, template: str, pid: str, rid: str) -> str:
    if kind == "project":
        return api_path(template, pid=pid)
    return template.format(pid=segment(pid, "project ID"), rid=segment(rid, _ID_LABEL[kind]))


def _delete(s: Session, kind: str, pid: str, rid: str) -> pd.DataFrame:
    template, schema, _ = KINDS[kind]
    path = _path(kind, template, pid, rid)
    row = to_frame(s.get_object(path), schema)  # what will go; an unknown ID is a 404 here
    _write(s, "DELETE", path, kind)
    _LOGGER.info("deleted %s", describe(kind, row))
    return row


def _write(s: Session, method: str, path: str, kind: str, **kwargs: Any) -> requests.Response:
    """Send a write (to a resource of ``kind``) once; with no answer, say it may have happened."""
    try:
        return s.request(method, path, **kwargs)
    except TransportError as exc:
        check = KINDS[kind][2]
        raise TransportError(
            exc.method, exc.url, exc.message,
            hint=f"if the request reached the server it may have acted: check with {check} before trying again",
        ) from None


def _project_frame(resp: requests.Response) -> pd.DataFrame:
    return to_frame(object_of(resp), "projects")


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidValueError(f"a project name must be non-empty text, not {name!r}",
                                hint="give the project a name, e.g. 'Lattice study'")
    return name


def _check_access(access: Any) -> str:
    value = access.strip().lower() if isinstance(access, str) else access
    if value not in ACCESS_VALUES:
        raise InvalidValueError(
            f"access {access!r} is not one of {', '.join(ACCESS_VALUES)}",
            hint="use private (only you), public (anyone) or org (your organisation)",
        )
    return value


def _plain_id(value: Any, what: str) -> str:
    segment(value, what)  # the same rule as path IDs: one plain value
    return str(value).strip()


def _text(value: Any) -> str:
    return "" if pd.isna(value) else str(value)

