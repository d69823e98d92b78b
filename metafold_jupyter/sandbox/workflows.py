"""Workflow definitions (YAML jobs), scheduling and the time-based state machine.

A definition is YAML with a top-level ``jobs:`` mapping of job name to
``{type, needs?, assets?, parameters?}``. ``needs`` names upstream jobs (a list
or a single name); ``assets`` maps an input name to a project filename or to
``<job>.<output>`` of an upstream job; ``parameters`` maps names to values
(non-strings are JSON-encoded, as the API's params are strings).

Nothing runs in the background: a workflow's state is computed from the clock
whenever it is read (:func:`advance`). After a short queue phase (10 % of the
duration, at most 0.5 s) jobs run one after another in dependency order, each
taking an equal share of the rest. A job whose type ends in ``/fail`` fails at
its finish time; the workflow then ends in ``failure`` and every job that has
not finished (its downstream jobs included) becomes ``canceled`` at that moment.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

from . import meshes
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
    "outputs_for",
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


def schedule(jobs: list[Job], start: float, duration: float) -> None:
    """Plan start/finish times for ``jobs`` (already in execution order)."""
    queue = min(0.1 * duration, _MAX_QUEUE)
    slot = (duration - queue) / len(jobs)
    for i, job in enumerate(jobs):
        job.plan_start = start + queue + i * slot
        job.plan_finish = job.plan_start + slot


def advance(workflow: Workflow, jobs: list[Job], now: float, on_success: Callable[[Job], None]) -> None:
    """Bring ``workflow`` and its ``jobs`` (execution order) up to time ``now``.

    Args:
        on_success: called once per job as it succeeds, to create its outputs.
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
        if job.fail_error is not None:
            job.state, job.error = "failure", job.fail_error
            _cancel_rest(jobs, job.plan_finish)
            workflow.state, workflow.finished = "failure", job.plan_finish
            break
        job.state = "success"
        on_success(job)
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


def outputs_for(job: Job) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Return a successful job's output params and files.

    Returns:
        ``(params, files)`` with files as output name -> (extension, bytes).
    """
    t = job.type
    label = job.name or f"job-{job.id}"
    if t == "mesh/from-volume":
        tris = meshes.octahedron_triangles()
        return (
            {"triangles": str(len(tris)), "watertight": "true"},
            {"mesh": ("stl", meshes.stl_ascii(label, tris))},
        )
    if t == "mesh/preprocess":
        tris = meshes.cube_triangles()
        return (
            {"triangles": str(len(tris)), "units": "mm"},
            {"mesh": ("stl", meshes.stl_binary(f"{label} (preprocessed)", tris))},
        )
    if t == "mesh/compute-bvh":
        return ({"nodes": "23", "depth": "5"}, {"bvh": ("bin", b"MFBVH\x00\x00\x00" + bytes(range(256)) * 4)})
    if t.startswith("implicit/metrics"):
        r = 5.0
        return (
            {
                "volume": f"{4.0 / 3.0 * math.pi * r ** 3:.6f}",
                "surface_area": f"{4.0 * math.pi * r ** 2:.6f}",
                "bounding_box": "[-5.0, -5.0, -5.0, 5.0, 5.0, 5.0]",
            },
            {},
        )
    if t.startswith("implicit/") or t.startswith("sample"):
        return (
            {"resolution": "[16, 16, 16]", "patch_size": "0.0667"},
            {"volume": ("bin", meshes.sphere_volume())},
        )
    if t.startswith("sim/postprocess"):
        return (
            {"max_von_mises_MPa": "731.000", "safety_factor": "1.37"},
            {"report": ("csv", meshes.results_csv(label, rows=3))},
        )
    if t.startswith("sim/"):
        return (
            {"max_von_mises_MPa": "731.000", "max_displacement_mm": "0.42000"},
            {"results": ("csv", meshes.results_csv(label))},
        )
    return ({"status": "ok"}, {"log": ("txt", f"{label} ({t}) finished in the Metafold sandbox\n".encode())})
