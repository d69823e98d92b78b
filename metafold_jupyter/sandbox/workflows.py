"""Workflow definitions (YAML jobs), input resolution, scheduling and the time-based state machine.

A definition is YAML with a top-level ``jobs:`` mapping of job name to
``{type, needs?, assets?, parameters?}``. ``needs`` names upstream jobs (a list
or a single name); ``parameters`` maps names to values (non-strings are
JSON-encoded, as the API's params are strings). An ``assets`` value, in the
definition or in the run request's ``{"job.input": value}``, is resolved as
Metafold's own example workflows use it (:func:`resolve_inputs`): the bare name
of an upstream job means that job's output, ``job.output`` one named output of
it, and anything else a filename in the project. An input a job type reads but
is not given is taken from the first job in its ``needs`` that makes an output
of that name.

Nothing runs in the background: a workflow's state is computed from the clock
whenever it is read (:func:`advance`). After a short queue phase (10 % of the
duration, at most 0.5 s) jobs run one after another in dependency order, each
taking an equal share of the rest; a job's outputs are computed when it
finishes. A job whose type ends in ``/fail``, or whose outputs cannot be
computed, fails at its finish time; the workflow then ends in ``failure`` and
every job that has not finished (its downstream jobs included) becomes
``canceled`` at that moment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import jobtypes
from .replies import FieldError
from .resources import Job, Workflow

__all__ = [
    "JobSpec",
    "parse_definition",
    "split_mapping",
    "parse_duration",
    "schedule",
    "advance",
    "cancel",
    "resolve_inputs",
    "usage_of",
    "DURATION_PARAMETER",
    "FAILURE_MESSAGE",
]

DURATION_PARAMETER = "sandbox.duration"
FAILURE_MESSAGE = "Simulated failure: job type '{type}' always fails (teaching example)"
_MAX_QUEUE = 0.5


@dataclass
class JobSpec:
    """One job of a parsed definition."""

    name: str
    type: str
    needs: list[str] = field(default_factory=list)
    assets: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    fail_error: str | None = None


def _as_param(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def parse_definition(text: Any) -> list[JobSpec]:
    """Parse and check a workflow definition.

    Returns:
        The jobs in execution order (dependencies first, otherwise definition order).

    Raises:
        FieldError: (field ``definition``) on bad YAML, no jobs, a bad job entry,
            a ``needs`` naming an unknown job, or a dependency cycle.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        raise FieldError("definition", "Field is required")
    if not isinstance(text, str):
        raise FieldError("definition", "Expected the workflow definition as a YAML string")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise FieldError("definition", f"Invalid YAML{where}: {problem}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), dict) or not doc["jobs"]:
        raise FieldError("definition", "Definition must have a top-level 'jobs' mapping with at least one job")
    specs: dict[str, JobSpec] = {}
    for name, entry in doc["jobs"].items():
        name = str(name)
        if not isinstance(entry, dict):
            raise FieldError("definition", f"Job '{name}' must be a mapping with a 'type'")
        job_type = entry.get("type")
        if not isinstance(job_type, str) or not job_type.strip():
            raise FieldError("definition", f"Job '{name}' has no 'type'")
        needs = entry.get("needs") or []
        if isinstance(needs, str):
            needs = [needs]
        if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
            raise FieldError("definition", f"Job '{name}': 'needs' must be a list of job names")
        assets = entry.get("assets") or {}
        if not isinstance(assets, dict) or not all(isinstance(v, str) for v in assets.values()):
            raise FieldError("definition", f"Job '{name}': 'assets' must map input names to filenames")
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise FieldError("definition", f"Job '{name}': 'parameters' must be a mapping")
        specs[name] = JobSpec(
            name=name,
            type=job_type.strip(),
            needs=list(dict.fromkeys(needs)),
            assets={str(k): v for k, v in assets.items()},
            params={str(k): _as_param(v) for k, v in params.items()},
        )
    for spec in specs.values():
        for upstream in spec.needs:
            if upstream not in specs:
                raise FieldError("definition", f"Job '{spec.name}' needs unknown job '{upstream}'")
    return _topological(specs)


def _topological(specs: dict[str, JobSpec]) -> list[JobSpec]:
    order: list[JobSpec] = []
    done: set[str] = set()
    pending = list(specs)
    while pending:
        ready = [n for n in pending if all(u in done for u in specs[n].needs)]
        if not ready:
            raise FieldError("definition", f"Dependency cycle between jobs: {', '.join(sorted(pending))}")
        # Kahn's algorithm, one job at a time, so definition order breaks ties.
        name = ready[0]
        order.append(specs[name])
        done.add(name)
        pending.remove(name)
    return order


def split_mapping(mapping: Any, what: str, specs: list[JobSpec]) -> dict[str, dict[str, str]]:
    """Split a ``{"job.name": value}`` request mapping per job.

    Args:
        mapping: the request's ``parameters`` or ``assets`` (None allowed).
        what: the request field name, for errors.
        specs: the definition's jobs.

    Returns:
        job name -> {name: value}.

    Raises:
        FieldError: (field ``what``) on a bad key or a job not in the definition.
    """
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise FieldError(what, "Expected an object mapping 'job.name' to a value")
    names = {s.name for s in specs}
    out: dict[str, dict[str, str]] = {}
    for key, value in mapping.items():
        job, dot, name = str(key).partition(".")
        if not dot or not job or not name:
            raise FieldError(what, f"Key '{key}' must have the form 'job.name'")
        if job not in names:
            raise FieldError(what, f"Key '{key}' names job '{job}', which is not in the definition")
        out.setdefault(job, {})[name] = _as_param(value)
    return out


def parse_duration(value: str | None, default: float) -> float:
    """Return the per-workflow duration override (``sandbox.duration``), or ``default``.

    Raises:
        FieldError: (field ``parameters``) unless the value is a number of seconds in (0, 86400].
    """
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (0 < seconds <= 86400):
        raise FieldError("parameters", f"'{DURATION_PARAMETER}' must be a number of seconds in (0, 86400]")
    return seconds


def resolve_inputs(
    specs: list[JobSpec],
    requested: dict[str, dict[str, str]],
    find_file: Callable[[str], int | None],
    project_id: int,
) -> dict[str, dict[str, tuple]]:
    """Resolve every job's input assets.

    Args:
        specs: the definition's jobs.
        requested: the run request's assets per job (they override the definition's).
        find_file: filename -> asset ID in the project (None if there is none).
        project_id: for error messages.

    Returns:
        job name -> {input name: ``("asset", asset_id)`` or ``("job", job_name, output)``}.

    Raises:
        FieldError: (field ``assets``) a value that names nothing, an output the job
            type does not make, or a job missing from the consumer's ``needs``.
    """
    by_name = {s.name: s for s in specs}
    resolved: dict[str, dict[str, tuple]] = {}
    for spec in specs:
        refs: dict[str, tuple] = {}
        for input_name, value in {**spec.assets, **requested.get(spec.name, {})}.items():
            refs[input_name] = _resolve_one(spec, input_name, value, by_name, find_file, project_id)
        for input_name in jobtypes.kind_of(spec.type).inputs:
            if input_name in refs:
                continue
            for upstream in spec.needs:
                if input_name in jobtypes.kind_of(by_name[upstream].type).outputs:
                    refs[input_name] = ("job", upstream, input_name)
                    break
        resolved[spec.name] = refs
    return resolved


def _resolve_one(
    spec: JobSpec,
    input_name: str,
    value: str,
    by_name: dict[str, JobSpec],
    find_file: Callable[[str], int | None],
    project_id: int,
) -> tuple:
    job_name, dot, named = value.partition(".")
    target: JobSpec | None = None
    output: str | None = None  # None: the bare job name, its first output
    if value in by_name and value != spec.name:
        target = by_name[value]
    elif dot and named and job_name in by_name and job_name != spec.name:
        target, output = by_name[job_name], named
    if target is not None:
        outputs = jobtypes.kind_of(target.type).outputs
        if output is None and not outputs:
            raise FieldError("assets", f"Job '{spec.name}' uses '{value}' as its input '{input_name}', "
                                       f"but a {target.type} job makes no output asset")
        if output is not None and output not in outputs:
            asset_id = find_file(value)
            if asset_id is not None:  # a file that happens to look like "job.output"
                return ("asset", asset_id)
            made = ", ".join(outputs) or "none"
            raise FieldError("assets", f"Job '{spec.name}' uses '{value}', but a {target.type} job has no output "
                                       f"'{output}' (its outputs: {made})")
        if target.name not in spec.needs:
            raise FieldError("assets", f"Job '{spec.name}' uses '{value}' but does not list '{target.name}' in needs")
        return ("job", target.name, output or outputs[0])
    asset_id = find_file(value)
    if asset_id is not None:
        return ("asset", asset_id)
    raise FieldError(
        "assets",
        f"Asset '{value}' (input '{input_name}' of job '{spec.name}') does not exist in project {project_id}",
    )


def usage_of(specs: list[JobSpec]) -> dict[str, int]:
    """How many export and simulation jobs a definition has (what its dispatch counts)."""
    counts: dict[str, int] = {}
    for spec in specs:
        key = jobtypes.kind_of(spec.type).counts
        if key is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def schedule(jobs: list[Job], start: float, duration: float) -> None:
    """Plan start/finish times for ``jobs`` (already in execution order)."""
    queue = min(0.1 * duration, _MAX_QUEUE)
    slot = (duration - queue) / len(jobs)
    for i, job in enumerate(jobs):
        job.plan_start = start + queue + i * slot
        job.plan_finish = job.plan_start + slot


def advance(workflow: Workflow, jobs: list[Job], now: float, finish: Callable[[Job], str | None]) -> None:
    """Bring ``workflow`` and its ``jobs`` (execution order) up to time ``now``.

    Args:
        finish: called once per job when it reaches its finish time; creates its
            outputs and returns None, or returns the error that fails the job.
    """
    if workflow.done:
        return
    if not jobs:  # every job was deleted while it ran
        workflow.state, workflow.finished = "canceled", now
        return
    for job in jobs:
        if job.state in ("success", "failure", "canceled"):
            continue
        if now < job.plan_start:
            break
        job.state, job.started = "started", job.plan_start
        if now < job.plan_finish:
            break
        job.finished = job.plan_finish
        error = job.fail_error if job.fail_error is not None else finish(job)
        if error is not None:
            job.state, job.error = "failure", error
            _cancel_rest(jobs, job.plan_finish)
            workflow.state, workflow.finished = "failure", job.plan_finish
            break
        job.state = "success"
    started = [j.started for j in jobs if j.started is not None]
    workflow.started = min(started) if started else None
    if workflow.done:
        return
    if all(j.state == "success" for j in jobs):
        workflow.state, workflow.finished = "success", max(j.finished for j in jobs)  # type: ignore[type-var]
    elif started:
        workflow.state = "started"


def cancel(workflow: Workflow, jobs: list[Job], now: float) -> None:
    """Cancel a running workflow at ``now`` (call :func:`advance` first)."""
    _cancel_rest(jobs, now)
    workflow.state, workflow.finished = "canceled", now


def _cancel_rest(jobs: list[Job], when: float) -> None:
    for job in jobs:
        if job.state in ("pending", "started"):
            job.state, job.finished = "canceled", when


def fails(job_type: str) -> bool:
    """Whether a job of this type fails on purpose."""
    return job_type.endswith("/fail")
