"""The sandbox's in-memory account: projects, assets, jobs, workflows, usage, quota and licence.

One re-entrant lock guards everything; handlers call the public methods, which
take it. Asset bytes live in files under ``blob_dir`` (never in memory).
Workflows advance lazily: every read of a project's assets, jobs or workflows
first brings its running workflows up to the current time, computing the
outputs of the jobs that finished (``jobtypes``).

Usage counts what the Node SDK documents: projects created, assets imported,
export jobs and simulation jobs dispatched (``jobtypes.JobKind.counts``); a
dispatch whose jobs the quota cannot cover, or any counted action once the
licence has expired, is answered 403 and creates nothing. An optional limit on
workflows in flight answers a dispatch past it with 429 and ``Retry-After``.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import jobtypes
from . import workflows as wf
from .constants import LICENSE_PRODUCT, PLAN_LIMITS, USAGE_KEYS
from .replies import FieldError, MessageError, NotFoundError, StatusError
from .resources import Asset, Job, Project, Workflow, http_date, utc

__all__ = ["Store", "ACCESS_VALUES", "TYPE_VALUES", "hash_file"]

_LOGGER = logging.getLogger(__name__)

ACCESS_VALUES = ("private", "public", "org")
TYPE_VALUES = ("unspecified", "digital_test_bench_experiment")
_BLOCK = 1 << 20
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

LICENSE_ISSUED = utc(2025, 1, 1)
LICENSE_EXPIRES = utc(2030, 12, 31, 23, 59, 59)


def hash_file(path: Path) -> tuple[int, str]:
    """Return ``(size, "sha256:<hex>")`` of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            size += len(block)
    return size, "sha256:" + digest.hexdigest()


def _parse_id(text: str) -> int | None:
    # Only canonical numeric strings name a resource ("07" does not).
    if text.isascii() and text.isdigit() and str(int(text)) == text:
        return int(text)
    return None


class Store:
    """All resources of the sandbox account, thread-safe.

    Args:
        blob_dir: directory for asset files (owned by the sandbox).
        workflow_duration: default seconds a dispatched workflow takes.
        clock: returns the current POSIX time.
        max_running_workflows: refuse a dispatch (429) while the caller has this
            many workflows pending or started; None: no limit.
    """

    def __init__(
        self,
        blob_dir: Path,
        *,
        workflow_duration: float = 3.0,
        clock: Callable[[], float] = time.time,
        max_running_workflows: int | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.blob_dir = Path(blob_dir)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.workflow_duration = workflow_duration
        self.clock = clock
        self.max_running_workflows = max_running_workflows
        # computed job outputs by content; kept across resets (they are pure functions of it)
        self.results = jobtypes.ResultCache()
        self.default_project_id: int | None = None
        self._clear()

    # ------------------------------------------------------------------ state
    def _clear(self) -> None:
        self.projects: dict[int, Project] = {}
        self.assets: dict[int, Asset] = {}
        self.jobs: dict[int, Job] = {}
        self.workflows: dict[int, Workflow] = {}
        self._running: set[int] = set()
        self.usage: dict[str, int] = dict.fromkeys(USAGE_KEYS, 0)
        self.limits: dict[str, int] = dict(PLAN_LIMITS)
        self.license_expires = LICENSE_EXPIRES
        self._next = {"project": 1, "asset": 1, "job": 1, "workflow": 1}

    def clear(self) -> None:
        """Forget every resource and delete the asset files in ``blob_dir``."""
        with self.lock:
            self._clear()
            self.default_project_id = None
            for entry in self.blob_dir.iterdir():
                try:
                    entry.unlink()
                except OSError as exc:  # a file still open on Windows, say
                    _LOGGER.debug("could not remove %s: %s", entry, exc)

    def new_id(self, kind: str) -> int:
        """Allocate the next ID of ``kind`` (project, asset, job, workflow)."""
        with self.lock:
            value = self._next[kind]
            self._next[kind] = value + 1
            return value

    def quota(self) -> dict[str, int]:
        """Remaining counts: plan limit minus usage, never below zero."""
        with self.lock:
            return {k: max(self.limits[k] - self.usage[k], 0) for k in USAGE_KEYS}

    def set_quota(self, **remaining: int) -> None:
        """Set remaining counts (e.g. ``project=0``) by moving the plan limits."""
        with self.lock:
            for key, value in remaining.items():
                if key not in self.limits:
                    raise ValueError(f"unknown quota key {key!r}; expected one of {', '.join(USAGE_KEYS)}")
                self.limits[key] = self.usage[key] + int(value)

    @property
    def max_running_workflows(self) -> int | None:
        """Workflows a caller may have in flight before a dispatch is refused with 429 (None: no limit)."""
        return self._max_running

    @max_running_workflows.setter
    def max_running_workflows(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"max_running_workflows must be a positive whole number or None, not {value!r}")
        self._max_running = value

    def license(self) -> dict[str, Any]:
        """The licence record (fixed issue date; ``expired`` from the clock)."""
        with self.lock:
            return {
                "issued": http_date(LICENSE_ISSUED),
                "expires": http_date(self.license_expires),
                "expired": self.clock() >= self.license_expires,
                "product": LICENSE_PRODUCT,
            }

    def set_license(self, *, expires: float) -> None:
        """Move the licence's expiry (POSIX time); a time in the past makes counted actions 403."""
        with self.lock:
            self.license_expires = float(expires)

    def expire_license(self) -> None:
        """Let the licence expire now (``reset()`` restores it)."""
        self.set_license(expires=math.floor(self.clock()) - 1)

    def _check_license(self) -> None:
        if self.clock() >= self.license_expires:
            raise MessageError(403, "License expired")

    def _consume(self, key: str, message: str) -> None:
        self._check_license()
        if self.limits[key] - self.usage[key] <= 0:
            raise MessageError(403, message)
        self.usage[key] += 1

    # --------------------------------------------------------------- projects
    def add_project(
        self,
        user: str,
        name: str,
        *,
        access: str = "private",
        type: str = "unspecified",
        created: float | None = None,
        modified: float | None = None,
        thumbnail: str | None = None,
        project: dict[str, Any] | None = None,
        graph: dict[str, Any] | None = None,
        count: bool = True,
    ) -> Project:
        """Insert a project as is (seed data and creation both use this)."""
        with self.lock:
            created = self.clock() if created is None else created
            record = Project(
                id=self.new_id("project"),
                user=user,
                name=name,
                access=access,
                type=type,
                created=created,
                modified=created if modified is None else modified,
                thumbnail=thumbnail,
                project=project,
                graph=graph,
            )
            self.projects[record.id] = record
            if count:
                self.usage["project"] += 1
            return record

    def visible_projects(self, user: str) -> list[Project]:
        """The caller's projects."""
        with self.lock:
            return [p for p in self.projects.values() if p.user == user]

    def project(self, user: str, pid: str) -> Project:
        """The caller's project ``pid``.

        Raises:
            NotFoundError: unknown, or another user's project.
        """
        with self.lock:
            key = _parse_id(pid)
            record = self.projects.get(key) if key is not None else None
            if record is None or record.user != user:
                raise NotFoundError()
            return record

    def create_project(self, user: str, body: Any) -> Project:
        """Create (or, with ``source``, duplicate) a project from a request body."""
        if not isinstance(body, dict):
            raise FieldError("name", "Field is required")
        name = _check_name(body.get("name"))
        access = _check_choice(body, "access", ACCESS_VALUES, "private")
        data = _check_object(body, "project")
        graph = _check_object(body, "graph")
        with self.lock:
            source = None
            if body.get("source") is not None:
                key = _parse_id(str(body["source"]))
                source = self.projects.get(key) if key is not None else None
                if source is None or source.user != user:
                    raise FieldError("source", f"Project '{body['source']}' does not exist")
            ptype = _check_choice(body, "type", TYPE_VALUES, source.type if source else "unspecified")
            self._consume("project", "Project quota exceeded")
            if source is not None:
                data = copy.deepcopy(source.project) if data is None else data
                graph = copy.deepcopy(source.graph) if graph is None else graph
            return self.add_project(
                user,
                name,
                access=access,
                type=ptype,
                thumbnail=source.thumbnail if source else None,
                project=data,
                graph=graph,
                count=False,
            )

    def update_project(self, user: str, pid: str, body: Any) -> Project:
        """Apply a PATCH of any of name, access, project, graph (and type); bumps ``modified``."""
        if not isinstance(body, dict):
            raise FieldError("body", "Expected a JSON object")
        with self.lock:
            record = self.project(user, pid)
            changes: dict[str, Any] = {}
            if "name" in body:
                changes["name"] = _check_name(body["name"])
            if "access" in body:
                changes["access"] = _check_choice(body, "access", ACCESS_VALUES, record.access)
            if "type" in body:
                changes["type"] = _check_choice(body, "type", TYPE_VALUES, record.type)
            for key in ("project", "graph"):
                if key in body:
                    changes[key] = _check_object(body, key)
            for key, value in changes.items():
                setattr(record, key, value)
            record.modified = max(self.clock(), record.created)
            record.changed()
            return record

    def delete_project(self, user: str, pid: str) -> None:
        """Delete a project with its assets, jobs and workflows."""
        with self.lock:
            record = self.project(user, pid)
            for asset in [a for a in self.assets.values() if a.project_id == record.id]:
                self._drop_asset(asset)
            for job_id in [j.id for j in self.jobs.values() if j.project_id == record.id]:
                del self.jobs[job_id]
            for wid in [w.id for w in self.workflows.values() if w.project_id == record.id]:
                del self.workflows[wid]
                self._running.discard(wid)
            del self.projects[record.id]

    # ----------------------------------------------------------------- assets
    def add_asset_bytes(
        self,
        project_id: int,
        filename: str,
        data: bytes,
        *,
        created: float | None = None,
        job_id: int | None = None,
    ) -> Asset:
        """Store ``data`` as a new asset file (seed data and job outputs)."""
        with self.lock:
            asset_id = self.new_id("asset")
            path = self.blob_dir / str(asset_id)
            path.write_bytes(data)
            checksum = "sha256:" + hashlib.sha256(data).hexdigest()
            return self._insert_asset(asset_id, project_id, filename, path, len(data), checksum, created, job_id)

    def add_asset_file(
        self, project_id: int, filename: str, path: Path, size: int, checksum: str, *, created: float | None = None
    ) -> Asset:
        """Register an existing file outside ``blob_dir`` as an asset (the bulk asset); it is never deleted."""
        with self.lock:
            asset_id = self.new_id("asset")
            return self._insert_asset(asset_id, project_id, filename, Path(path), size, checksum, created, None)

    def _insert_asset(
        self,
        asset_id: int,
        project_id: int,
        filename: str,
        path: Path,
        size: int,
        checksum: str,
        created: float | None,
        job_id: int | None,
    ) -> Asset:
        created = self.clock() if created is None else created
        asset = Asset(
            id=asset_id,
            project_id=project_id,
            filename=filename,
            size=size,
            checksum=checksum,
            created=created,
            modified=created,
            path=path,
            job_id=job_id,
        )
        self.assets[asset_id] = asset
        return asset

    def _find_filename(self, project_id: int, filename: str) -> Asset | None:
        for asset in self.assets.values():
            if asset.project_id == project_id and asset.filename == filename:
                return asset
        return None

    def upload_path(self) -> Path:
        """A fresh path in ``blob_dir`` to stream an upload into."""
        return self.blob_dir / f"incoming-{uuid.uuid4().hex}"

    def check_upload(self, user: str, pid: str, filename: str) -> None:
        """Fail early (before copying bytes) on an unknown project, a taken filename or no quota."""
        with self.lock:
            record = self.project(user, pid)
            if self._find_filename(record.id, filename) is not None:
                raise FieldError("file", f"Asset with filename '{filename}' already exists")
            self._check_license()
            if self.limits["import"] - self.usage["import"] <= 0:
                raise MessageError(403, "Import quota exceeded")

    def import_upload(self, user: str, pid: str, filename: str, incoming: Path, size: int, checksum: str) -> Asset:
        """Turn an uploaded file (from :meth:`upload_path`) into an asset; the file is moved or removed."""
        try:
            with self.lock:
                self.check_upload(user, pid, filename)
                record = self.project(user, pid)
                self._consume("import", "Import quota exceeded")
                asset_id = self.new_id("asset")
                path = self.blob_dir / str(asset_id)
                os.replace(incoming, path)
                return self._insert_asset(asset_id, record.id, filename, path, size, checksum, None, None)
        finally:
            if incoming.exists():
                incoming.unlink()

    def project_assets(self, user: str, pid: str) -> list[Asset]:
        """The assets of the caller's project ``pid`` (after advancing its workflows)."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            return [a for a in self.assets.values() if a.project_id == record.id]

    def asset(self, user: str, pid: str, aid: str) -> Asset:
        """One asset of the caller's project."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            key = _parse_id(aid)
            asset = self.assets.get(key) if key is not None else None
            if asset is None or asset.project_id != record.id:
                raise NotFoundError()
            return asset

    def asset_by_id(self, aid: int) -> Asset | None:
        """Any asset by ID (the download origin checks signatures, not users)."""
        with self.lock:
            return self.assets.get(aid)

    def delete_asset(self, user: str, pid: str, aid: str) -> None:
        """Delete an asset and its file."""
        with self.lock:
            self._drop_asset(self.asset(user, pid, aid))

    def _drop_asset(self, asset: Asset) -> None:
        del self.assets[asset.id]
        if asset.path.parent == self.blob_dir:
            try:
                asset.path.unlink()
            except OSError as exc:  # a download may still hold it open on Windows
                _LOGGER.debug("could not remove %s: %s", asset.path, exc)

    # ------------------------------------------------------------------- jobs
    def project_jobs(self, user: str, pid: str) -> list[Job]:
        """The jobs of the caller's project (after advancing its workflows)."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            return [j for j in self.jobs.values() if j.project_id == record.id]

    def job(self, user: str, pid: str, jid: str) -> Job:
        """One job of the caller's project."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            key = _parse_id(jid)
            job = self.jobs.get(key) if key is not None else None
            if job is None or job.project_id != record.id:
                raise NotFoundError()
            return job

    def delete_job(self, user: str, pid: str, jid: str) -> None:
        """Delete a job (and drop it from its workflow's job list)."""
        with self.lock:
            job = self.job(user, pid, jid)
            del self.jobs[job.id]
            workflow = self.workflows.get(job.workflow_id) if job.workflow_id is not None else None
            if workflow is not None and job.id in workflow.job_ids:
                workflow.job_ids.remove(job.id)

    def job_dict(self, job: Job) -> dict[str, Any]:
        """The API form of ``job``."""
        with self.lock:
            return job.to_dict(self.assets.get, self.jobs.get)

    def add_job(self, project_id: int, name: str | None, job_type: str, created: float, **fields: Any) -> Job:
        """Insert a job record as is (seed data for stand-alone jobs)."""
        with self.lock:
            job = Job(id=self.new_id("job"), project_id=project_id, name=name, type=job_type, created=created, **fields)
            self.jobs[job.id] = job
            return job

    # -------------------------------------------------------------- workflows
    def project_workflows(self, user: str, pid: str) -> list[Workflow]:
        """The workflows of the caller's project (advanced to now)."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            return [w for w in self.workflows.values() if w.project_id == record.id]

    def workflow(self, user: str, pid: str, wid: str) -> Workflow:
        """One workflow of the caller's project, advanced to now."""
        with self.lock:
            record = self.project(user, pid)
            self._advance(record.id)
            key = _parse_id(wid)
            workflow = self.workflows.get(key) if key is not None else None
            if workflow is None or workflow.project_id != record.id:
                raise NotFoundError()
            return workflow

    def delete_workflow(self, user: str, pid: str, wid: str) -> None:
        """Delete a workflow and its jobs (their output assets stay)."""
        with self.lock:
            workflow = self.workflow(user, pid, wid)
            for job_id in workflow.job_ids:
                self.jobs.pop(job_id, None)
            del self.workflows[workflow.id]
            self._running.discard(workflow.id)

    def cancel_workflow(self, user: str, pid: str, wid: str) -> Workflow:
        """Cancel a running workflow.

        Raises:
            MessageError: 400 if it already finished.
        """
        with self.lock:
            workflow = self.workflow(user, pid, wid)
            if workflow.done:
                raise MessageError(400, f"Workflow has already finished ({workflow.state})")
            wf.cancel(workflow, self._jobs_of(workflow), self.clock())
            self._running.discard(workflow.id)
            return workflow

    def dispatch(
        self,
        user: str,
        pid: str,
        body: Any,
        *,
        now: float | None = None,
        fail_errors: dict[str, str] | None = None,
        count: bool = True,
    ) -> Workflow:
        """Create a workflow and its jobs from a run request.

        Args:
            body: ``{definition, parameters?, assets?}``; ``parameters`` may hold
                ``"sandbox.duration": "<seconds>"`` to override the duration.
            now: dispatch time (seed data dispatches in the past, unlimited).
            fail_errors: job name -> error, to make a seed job fail.
            count: count its export and simulation jobs in usage (and check the quota
                and the licence).

        Raises:
            StatusError: 429 with ``Retry-After`` past ``max_running_workflows``.
            FieldError: 400 for a bad definition, parameters or assets.
            MessageError: 403 for an expired licence or a quota it would exceed.
        """
        with self.lock:
            self.project(user, pid)
            if now is None:
                self._check_in_flight(user)
        if not isinstance(body, dict):
            raise FieldError("definition", "Field is required")
        specs = wf.parse_definition(body.get("definition"))
        raw_params = body.get("parameters")
        duration_text = None
        if isinstance(raw_params, dict) and wf.DURATION_PARAMETER in raw_params:
            raw_params = dict(raw_params)
            duration_text = str(raw_params.pop(wf.DURATION_PARAMETER))
        params = wf.split_mapping(raw_params, "parameters", specs)
        asset_map = wf.split_mapping(body.get("assets"), "assets", specs)
        with self.lock:
            duration = wf.parse_duration(duration_text, self.workflow_duration)
            record = self.project(user, pid)
            if now is None:  # checked again under the same lock hold as the creation below
                self._check_in_flight(user)

            def find_file(filename: str) -> int | None:
                asset = self._find_filename(record.id, filename)
                return None if asset is None else asset.id

            inputs = wf.resolve_inputs(specs, asset_map, find_file, record.id)
            if count:
                needed = wf.usage_of(specs)
                self._check_license()
                for key in ("export", "simulation"):
                    if self.limits[key] - self.usage[key] < needed.get(key, 0):
                        raise MessageError(403, f"{key.capitalize()} quota exceeded")
                for key, n in needed.items():
                    self.usage[key] += n
            now = self.clock() if now is None else now
            workflow = Workflow(
                id=self.new_id("workflow"),
                project_id=record.id,
                definition=body["definition"],
                created=now,
                duration=duration,
            )
            by_name: dict[str, Job] = {}
            for spec in specs:
                fail_error = (fail_errors or {}).get(spec.name)
                if fail_error is None and wf.fails(spec.type):
                    fail_error = wf.FAILURE_MESSAGE.format(type=spec.type)
                job = Job(
                    id=self.new_id("job"),
                    project_id=record.id,
                    name=spec.name,
                    type=spec.type,
                    created=now,
                    workflow_id=workflow.id,
                    needs=[by_name[n].id for n in spec.needs],
                    input_params={**spec.params, **params.get(spec.name, {})},
                    fail_error=fail_error,
                )
                job.input_assets = {
                    k: (ref if ref[0] == "asset" else ("output", by_name[ref[1]].id, ref[2]))
                    for k, ref in inputs[spec.name].items()
                }
                by_name[spec.name] = job
                self.jobs[job.id] = job
                workflow.job_ids.append(job.id)
            wf.schedule([by_name[s.name] for s in specs], now, duration)
            self.workflows[workflow.id] = workflow
            self._running.add(workflow.id)
            self._advance(record.id, now)
            return workflow

    def _check_in_flight(self, user: str) -> None:
        """429 with ``Retry-After`` if ``user`` already has the allowed number of workflows in flight."""
        limit = self._max_running
        if limit is None:
            return
        now = self.clock()
        self._advance(None, now)
        mine = [
            self.workflows[w] for w in self._running
            if (p := self.projects.get(self.workflows[w].project_id)) is not None and p.user == user
        ]
        if len(mine) < limit:
            return
        # the earliest a slot frees up: the first of these workflows to finish on schedule
        ends = [max((j.plan_finish for j in self._jobs_of(w)), default=now) for w in mine]
        wait = max(1, math.ceil(min(ends) - now))
        raise StatusError(
            429,
            f"Too many workflows in flight ({len(mine)}, the limit is {limit}); retry after {wait} s",
            headers={"Retry-After": str(wait)},
        )

    def _jobs_of(self, workflow: Workflow) -> list[Job]:
        return [self.jobs[j] for j in workflow.job_ids if j in self.jobs]

    def advance_all(self, now: float | None = None) -> None:
        """Advance every running workflow to ``now``."""
        with self.lock:
            self._advance(None, now)

    def _advance(self, project_id: int | None, now: float | None = None) -> None:
        if not self._running:
            return
        now = self.clock() if now is None else now
        for wid in sorted(self._running):
            workflow = self.workflows[wid]
            if project_id is not None and workflow.project_id != project_id:
                continue
            wf.advance(workflow, self._jobs_of(workflow), now, self._finish_job)
            if workflow.done:
                self._running.discard(wid)

    def _finish_job(self, job: Job) -> str | None:
        """Compute a finished job's outputs and store them; returns the error that fails it instead."""
        inputs: dict[str, jobtypes.JobInput] = {}
        for name, ref in job.input_assets.items():
            if ref[0] == "asset":
                asset = self.assets.get(ref[1])
            else:
                upstream = self.jobs.get(ref[1])
                aid = (upstream.output_assets or {}).get(ref[2]) if upstream is not None else None
                asset = self.assets.get(aid) if aid is not None else None
            if asset is None:
                return f"Input '{name}' is no longer available (its asset or job was deleted)"
            inputs[name] = jobtypes.JobInput(asset.filename, asset.checksum, asset.path)
        label = job.name or f"job-{job.id}"
        try:
            params, files = jobtypes.run_job(job.type, job.input_params, inputs, label, self.results)
        except jobtypes.JobFailure as exc:
            return f"{job.type}: {exc}"
        except Exception:  # noqa: BLE001 - a sandbox bug must fail one job, not turn every later read into a 500
            _LOGGER.exception("sandbox job %s (%s) could not compute its outputs", job.id, job.type)
            return f"{job.type}: the sandbox could not compute this job's outputs (internal error, see its log)"
        base = _UNSAFE_NAME.sub("-", job.name or "job").strip("-") or "job"
        made: dict[str, int] = {}
        for output, (ext, data) in files.items():
            stem = f"{base}-{job.id}" if len(files) == 1 else f"{base}-{job.id}-{output}"
            filename, n = f"{stem}.{ext}", 1
            while self._find_filename(job.project_id, filename) is not None:
                n += 1
                filename = f"{stem}-{n}.{ext}"
            made[output] = self.add_asset_bytes(
                job.project_id, filename, data, created=job.plan_finish, job_id=job.id
            ).id
        job.output_params = params
        job.output_assets = made
        return None


def _check_name(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise FieldError("name", "Field is required")
    if not isinstance(value, str):
        raise FieldError("name", "Not a valid string")
    if len(value) > 255:
        raise FieldError("name", "Longer than maximum length 255")
    return value


def _check_choice(body: dict[str, Any], key: str, choices: Iterable[str], default: str) -> str:
    value = body.get(key)
    if value is None:
        return default
    if value not in choices:
        raise FieldError(key, f"Must be one of: {', '.join(choices)}")
    return value


def _check_object(body: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = body.get(key)
    if value is not None and not isinstance(value, dict):
        raise FieldError(key, "Not a valid mapping")
    return value
