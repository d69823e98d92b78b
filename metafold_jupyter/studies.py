"""Parameter studies: one workflow per design point, several in flight, one frame back.

Feature layer (beside ``fanout``, above ``operations``). ``mf.grid({...})`` builds the
design points (a cartesian product, one row per run); ``mf.run_workflows(definition,
runs)`` runs the workflow once per row and returns one typed row per run, with every
job's output params and output asset IDs as ``<job>.<name>`` columns.

How a study behaves on the wire:

- ``concurrency`` (default 4) bounds the **workflows in flight**: the study runs on
  :func:`~metafold_jupyter.fanout.gather` with that many workers, each taking one run
  from dispatch to its outputs. ``Session.concurrency`` (default 6) keeps bounding
  the **requests in flight**: every request of the study (dispatch, status poll,
  job fetch) holds a slot of one shared :class:`~metafold_jupyter.pacing.Throttle`
  of ``min(concurrency, Session.concurrency)`` places, as an account-wide frame does.
- Each run polls its own workflow's status link on the same growing schedule as
  ``mf.run_workflow`` (one GET per workflow per tick), so a study of N runs makes at
  most N times the polls of one run. Polling the project's workflow list once per
  tick would cost fewer requests but a list of every workflow of the project (with
  its definition) per tick, growing with the project; a status answer is a few bytes.
  When a run finishes, its jobs are fetched once each (``GET .../jobs/{id}``), not
  the project's job list.
- A dispatch refused with 429 was not acted on (the server refused it), so it is sent
  again once the ``Retry-After`` has passed; the pause goes through the shared
  throttle, so every run waits it out rather than hammering. urllib3 never re-sends a
  POST (``transport.WriteOnceRetry``); this is the only re-send, and only on 429. Any
  other dispatch failure fails that run and is never replayed.
- Failed runs do not stop the study: the row says ``state`` (``failure``) and
  ``error`` (the first failed job's error), and a ``WorkflowFailedWarning`` sums
  them up.
- Ctrl-C stops dispatching, waits for dispatches already on the wire, cancels every
  unfinished workflow of the study remotely (each cancel sent once) and raises
  :class:`StudyInterrupted`, a ``KeyboardInterrupt`` whose ``.frame`` holds every
  run's row (finished runs complete, cancelled ones ``canceled``).
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pandas as pd

from .answers import object_of
from .errors import APIError, InvalidValueError, PollTimeout
from .fanout import workers_for, gather
from .frames import DATETIME, TIMEDELTA, to_frame
from .kernel_session import Session, session as current_session
from .operations import (
    FINISHED,
    WorkflowFailedWarning,
    asset_filenames,
    cancel_remote,
    definition_text,
    dispatched_workflow,
    parameter_text,
    poll_status,
    status_link,
)
from .pacing import DEFAULT_PAUSE, Cancelled, Throttle
from .paths import api_path

__all__ = ["grid", "run_workflows", "StudyInterrupted", "DEFAULT_CONCURRENCY", "MAX_CONCURRENCY", "RUN_COLUMNS"]

_LOGGER = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 4  # workflows in flight; independent of Session.concurrency (requests in flight)
MAX_CONCURRENCY = 16
#: The columns around a study's parameter columns: ``run`` before them, these after.
RUN_COLUMNS = ("workflow_id", "state", "created", "started", "finished", "duration", "error")
_INTEGER = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_BOOLEAN = frozenset({"true", "false"})
_SHOWN_FAILURES = 3


class StudyInterrupted(KeyboardInterrupt):
    """Ctrl-C during a study: the unfinished workflows were cancelled remotely.

    A ``KeyboardInterrupt``, so the cell still stops; nothing that finished is lost.

    Attributes:
        frame: one row per run, as :func:`run_workflows` returns it: finished runs
            complete, cancelled ones ``canceled``, runs never dispatched with no state.
        cancelled: IDs of the workflows cancelled on the server.
        summary: the message without the pointer to ``.frame``.
    """

    def __init__(self, summary: str, *, frame: pd.DataFrame, cancelled: list[str]) -> None:
        super().__init__(f"{summary}; every run's row is in this exception's .frame "
                         "(in IPython: sys.last_value.frame)")
        self.summary = summary
        self.frame = frame
        self.cancelled = cancelled


# -- design points -------------------------------------------------------------------------


def grid(mapping: Mapping[str, Any] | None = None, **params: Any) -> pd.DataFrame:
    """The cartesian product of parameter values: one row per run, one column per parameter.

    ``mf.grid({"sample.thickness": [0.5, 1, 2], "sample.resolution": [16, 32]})`` gives
    6 rows; the last parameter varies fastest. Keys are ``"job.param"``, as the
    workflow's run request takes them. Keyword arguments cannot hold a dot, so there
    ``__`` stands for it (``sample__thickness=[...]`` is ``"sample.thickness"``).
    A value that is not a list (a number, a string) is a single value. With no
    parameters at all the product has one (empty) row.

    Returns:
        A DataFrame with a 0..n-1 index: numbers as int64/float64, text as ``string``.

    Raises:
        InvalidValueError: a parameter given twice, or ``mapping`` is not a mapping.
    """
    if mapping is not None and not isinstance(mapping, Mapping):
        raise InvalidValueError(
            f"grid takes a mapping of parameter -> values, not {type(mapping).__name__}",
            hint='e.g. mf.grid({"sample.thickness": [0.5, 1, 2]})',
        )
    axes: dict[str, list[Any]] = {}
    named = [(str(k), v) for k, v in (mapping or {}).items()]
    named += [(k.replace("__", "."), v) for k, v in params.items()]
    for name, values in named:
        if name in axes:
            raise InvalidValueError(f"parameter {name!r} is given twice", hint="give each parameter once")
        axes[name] = _values(values)
    rows = list(itertools.product(*axes.values()))
    columns = {name: _column([row[i] for row in rows]) for i, name in enumerate(axes)}
    return pd.DataFrame(columns, index=pd.RangeIndex(len(rows)))


def value_from_text(text: str) -> Any:
    """A value typed as text (a magic's line): an int or a float where it looks like one, else the text."""
    text = text.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        return float(text)
    return text


def _values(values: Any) -> list[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        return [values]
    return list(values)


def _column(values: list[Any]) -> pd.Series:
    """Values of one parameter as a typed column: numbers numeric, text ``string``, else object."""
    if not values:
        return pd.Series([], dtype=object)
    present = [v for v in values if not _missing(v)]
    if present and all(isinstance(v, str) for v in present):
        return pd.Series([None if _missing(v) else v for v in values], dtype="string")
    if present and all(isinstance(v, (list, tuple, dict)) for v in present):
        return pd.Series(values, dtype=object)  # pandas would try to broadcast them
    if present and len(present) < len(values) and all(
        isinstance(v, int) and not isinstance(v, bool) for v in present
    ):
        return pd.Series([None if _missing(v) else v for v in values], dtype="Int64")
    series = pd.Series(values)
    return series.astype("string") if series.dtype == "str" else series


def _missing(value: Any) -> bool:
    """None, NaN, NaT or <NA> (a list or a dict is never missing)."""
    if value is None:
        return True
    if isinstance(value, (list, tuple, dict, set, str)):
        return False
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # array-likes
        return False


# -- running a study ---------------------------------------------------------------------------


def run_workflows(
    definition: str | Mapping[str, Any] | os.PathLike,
    runs: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    assets: Mapping[str, str] | None = None,
    project: str | None = None,
    concurrency: int | None = None,
    timeout: float = 600,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run a parameter study: one workflow per row of ``runs``, a few in flight at once.

    Args:
        definition: the workflow YAML, a dict, or a path to a YAML file (as ``mf.run_workflow``).
        runs: a DataFrame such as ``mf.grid(...)`` (each column a ``"job.param"``), or a
            list of dicts of ``"job.param": value``. A missing value (NaN, None) is not
            sent, so the job's default applies.
        assets: ``{"job.input": asset ID or filename}`` for every run.
        project: default: the session's project.
        concurrency: workflows in flight at most (1..16, default 4). Requests in
            flight stay bounded by ``Session.concurrency`` as well.
        timeout: seconds each run may take from its first dispatch attempt (waiting out
            429s included); a run still going then fails with that error and keeps
            running remotely.
        progress: ``False`` hides the progress bar (runs finished / total, failures).

    Returns:
        One row per run, in the order of ``runs``: ``run`` (0..n-1), the parameter
        columns, ``workflow_id``, ``state``, ``created``, ``started``, ``finished``,
        ``duration``, ``error`` (the first failed job's error), then ``<job>.<name>``
        per output param (numeric when every value is a number) and per output
        asset (its ID).

    Raises:
        StudyInterrupted: Ctrl-C; the unfinished workflows were cancelled, ``.frame``
            holds every run's row.
        APIError: every dispatch was refused the same way (a bad definition, an
            unknown input, an expired licence), as ``mf.run_workflow`` would raise it.
        InvalidValueError: ``runs`` or ``concurrency`` cannot be used (before anything is sent).
    """
    table, rows = _runs_table(runs)
    workers = _check_concurrency(concurrency)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not timeout > 0:
        raise InvalidValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
    text = definition_text(definition)
    if not rows:
        return _lead_frame(table)
    s = current_session()
    pid = s.require_project(project)
    names = asset_filenames(s, pid, assets) if assets else None
    throttle = Throttle(min(workers, workers_for(s)))
    study = _Study(s, pid, text, names, table, rows, float(timeout), throttle)
    try:
        gather(
            {i: partial(study.run, i) for i in range(len(table))},
            concurrency=workers,
            throttle=throttle,
            progress=progress,
            desc="parameter study",
            unit="run",
            slot_per_task=False,
            failures=(_RunFailed,),
        )
    except KeyboardInterrupt:
        summary, cancelled = study.stop()
        raise StudyInterrupted(summary, frame=study.frame(), cancelled=cancelled) from None
    except BaseException:
        study.stop()  # a study that stops leaves nothing running
        raise
    study.raise_if_all_refused()
    frame = study.frame()
    study.warn_failures()
    return frame


def _check_concurrency(value: Any) -> int:
    if value is None:
        return DEFAULT_CONCURRENCY
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
        raise InvalidValueError(
            f"concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, not {value!r}",
            hint=f"the number of workflows in flight at once (default {DEFAULT_CONCURRENCY})",
        )
    return value


def _runs_table(runs: Any) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """``runs`` as a DataFrame (0..n-1 index, ``"job.param"`` columns), and each run's values
    as given (a list of dicts keeps its own values: an int is sent as an int even where the
    column, having gaps, became float)."""
    if isinstance(runs, pd.DataFrame):
        table = runs.reset_index(drop=True)
        table.columns = [str(c) for c in table.columns]
        rows = table.to_dict("records")
    elif isinstance(runs, (Mapping, str, bytes)) or not isinstance(runs, Iterable):
        raise InvalidValueError(
            f"runs must be a DataFrame or a list of dicts (one per run), not {type(runs).__name__}",
            hint='for every combination of values use mf.grid({"sample.thickness": [0.5, 1], ...})',
        )
    else:
        rows = list(runs)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise InvalidValueError(
                    f"run {i} is a {type(row).__name__}, not a dict of 'job.param': value",
                    hint='e.g. [{"sample.thickness": 0.5}, {"sample.thickness": 1.0}]',
                )
        keys = list(dict.fromkeys(str(k) for row in rows for k in row))
        rows = [{str(k): v for k, v in row.items()} for row in rows]
        table = pd.DataFrame({k: _column([row.get(k) for row in rows]) for k in keys},
                             index=pd.RangeIndex(len(rows)))
    duplicated = sorted({c for c in table.columns if list(table.columns).count(c) > 1})
    if duplicated:
        raise InvalidValueError(f"runs has the column {duplicated[0]!r} twice", hint="give each parameter once")
    bad = [c for c in table.columns if not all(part.strip() for part in c.partition(".")[::2])]
    if bad:
        raise InvalidValueError(
            f"parameter {bad[0]!r} does not name its job: write it as 'job.param' (e.g. 'sample.thickness')",
            hint='with keyword arguments write job__param: mf.grid(sample__thickness=[...])',
        )
    return table, rows


class _RunFailed(Exception):
    """A run that did not succeed (its row says why); counted by the progress display."""


@dataclass
class _Run:
    index: int
    parameters: dict[str, str]
    phase: str = "queued"  # queued -> dispatching -> running -> collecting -> done
    workflow: dict[str, Any] | None = None
    jobs: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    refusal: APIError | None = None  # a dispatch the server refused (not 429)

    @property
    def workflow_id(self) -> str | None:
        return None if self.workflow is None else str(self.workflow.get("id"))

    @property
    def failed(self) -> bool:
        return self.error is not None or (self.workflow or {}).get("state") != "success"


class _Study:
    """The runs of one study and the state its workers and the main thread share."""

    def __init__(self, s: Session, pid: str, definition: str, assets: dict[str, str] | None,
                 table: pd.DataFrame, rows: list[dict[str, Any]], timeout: float, throttle: Throttle) -> None:
        self.s = s
        self.pid = pid
        self.table = table
        self.timeout = timeout
        self.throttle = throttle
        self.payload: dict[str, Any] = {"definition": definition}
        if assets:
            self.payload["assets"] = assets
        self.runs = [_Run(i, _sent_parameters(row)) for i, row in enumerate(rows)]
        self._cond = threading.Condition()
        self.stopped = False  # Ctrl-C: the main thread owns every run from now on
        self.abandoned = False  # a second Ctrl-C: the main thread no longer waits for dispatches

    # -- one run, in a worker thread --------------------------------------------------------

    def run(self, i: int) -> int:
        """Dispatch run ``i``, wait for it, fetch its jobs; raise :class:`_RunFailed` if it failed."""
        run = self.runs[i]
        deadline = time.monotonic() + self.timeout
        try:
            workflow = self._dispatch(run, deadline)
            wid = str(workflow["id"])
            link = status_link(self.s, self.pid, wid, workflow)
            final = poll_status(
                lambda: self._request("GET", link), wid, deadline=deadline, timeout=self.timeout,
                sleep=self.throttle.wait, on_poll=lambda state: self._saw(run, state),
            )
            if not self._advance(run, "collecting", workflow=final):
                return i
            jobs = self._fetch_jobs(final.get("jobs") or workflow.get("jobs") or [])
            self._advance(run, "done", jobs=jobs)
        except PollTimeout as exc:
            self._advance(run, "done", error=f"{exc} — {exc.hint}")
        except APIError as exc:
            self._advance(run, "done", error=str(exc))
        if run.failed:
            raise _RunFailed(i)
        return i

    def _dispatch(self, run: _Run, deadline: float) -> dict[str, Any]:
        """POST the run; a 429 (refused, so not acted on) pauses every run for Retry-After, then again.

        Raises:
            APIError: any other refusal or no answer (never sent again), or still 429 at the deadline.
            Cancelled: the study was interrupted before it was sent.
        """
        payload = {**self.payload, **({"parameters": run.parameters} if run.parameters else {})}
        path = api_path("/projects/{pid}/workflows", pid=self.pid)
        refusals = 0
        while True:
            with self.throttle.slot():  # waits out the shared pause first
                with self._cond:
                    if self.stopped:
                        raise Cancelled("the study was interrupted")
                    run.phase = "dispatching"
                try:
                    resp = self.s.request("POST", path, json=payload)
                except APIError as exc:
                    self._set_phase(run, "queued")
                    if exc.status != 429:
                        if exc.status is not None and 400 <= exc.status < 500:
                            run.refusal = exc
                        raise
                    refusals += 1
                    pause = exc.retry_after or DEFAULT_PAUSE
                    if time.monotonic() + pause >= deadline:
                        raise APIError(
                            429, "POST", exc.url,
                            f"{exc.message} (refused {refusals} times in {self.timeout:g} s; not dispatched)",
                            hint="raise timeout=, lower concurrency=, or wait for the running workflows",
                        ) from None
                    _LOGGER.info("dispatch of run %d refused (429): every run waits %.1f s", run.index, pause)
                    self.throttle.slow_down(pause, 429)
                    continue
                except BaseException:
                    self._set_phase(run, "queued")
                    raise
            workflow = dispatched_workflow(self.s, resp, path)
            with self._cond:
                run.workflow = workflow
                run.phase = "running"
                orphan = self.abandoned
                self._cond.notify_all()
            if orphan:  # answered after the main thread stopped waiting for it: cancel it here, once
                self._cancel_late(run)
                raise Cancelled("the study was interrupted")
            _LOGGER.info("run %d: dispatched workflow %s", run.index, workflow.get("id"))
            return workflow

    def _request(self, method: str, path: str) -> Any:
        with self.throttle.slot():
            return self.s.request(method, path)

    def _fetch_jobs(self, job_ids: list[Any], request: Callable[[str, str], Any] | None = None) -> list[dict[str, Any]]:
        """Each job of a finished workflow, once (its outputs), in the workflow's order."""
        request = request or self._request
        paths = [api_path("/projects/{pid}/jobs/{jid}", pid=self.pid, jid=str(jid)) for jid in job_ids]
        return [object_of(request("GET", path)) for path in paths]

    def _saw(self, run: _Run, state: str) -> None:
        with self._cond:
            if not self.stopped and run.workflow is not None:
                run.workflow = {**run.workflow, "state": state}

    def _set_phase(self, run: _Run, phase: str) -> None:
        with self._cond:
            run.phase = phase
            self._cond.notify_all()

    def _advance(self, run: _Run, phase: str, *, workflow: dict[str, Any] | None = None,
                 jobs: list[dict[str, Any]] | None = None, error: str | None = None) -> bool:
        """Record a worker's progress, unless the main thread owns the runs (after Ctrl-C)."""
        with self._cond:
            if self.stopped:
                return False
            if workflow is not None:
                run.workflow = workflow
            if jobs is not None:
                run.jobs = jobs
                run.error = _first_error(run.workflow or {}, jobs)
            if error is not None:
                run.error = error
            run.phase = phase
            self._cond.notify_all()
            return True

    # -- Ctrl-C, in the main thread ----------------------------------------------------------

    def stop(self) -> tuple[str, list[str]]:
        """Take the runs over, cancel every unfinished workflow once; the summary and the cancelled IDs.

        A second Ctrl-C stops waiting and cancelling; the summary names what was left.
        """
        self.throttle.cancel()
        unanswered: list[_Run] = []
        with self._cond:
            self.stopped = True
            try:
                while any(r.phase == "dispatching" for r in self.runs):
                    self._cond.wait(0.1)  # dispatches on the wire: their workflows must be cancelled too
            except KeyboardInterrupt:
                self.abandoned = True
                unanswered = [r for r in self.runs if r.phase == "dispatching"]
            running = [r for r in self.runs if r.phase == "running"]
            collecting = [r for r in self.runs if r.phase == "collecting"]
        cancelled: list[str] = []
        left: list[str] = []
        pending = list(running)
        try:
            while pending:
                run = pending[0]
                wid = run.workflow_id or "?"
                try:
                    run.workflow = cancel_remote(self.s, self.pid, wid)
                    run.error = "interrupted: cancelled on the server"
                    cancelled.append(wid)
                except APIError as exc:
                    if exc.status == 400:  # it finished meanwhile: keep it as finished
                        collecting.append(run)
                    else:
                        run.error = f"interrupted; could not be cancelled: {exc}"
                        left.append(wid)
                run.phase = "done"
                pending.pop(0)
            for run in collecting:
                self._collect(run)
        except KeyboardInterrupt:  # a second Ctrl-C: stop cancelling, say what is left
            left += [r.workflow_id or "?" for r in pending]
            for run in pending:
                run.error = "interrupted; maybe not cancelled (interrupted again)"
        for run in self.runs:
            if run.phase == "queued":
                run.error = "not run: the study was interrupted before it was dispatched"
        return self._summary(cancelled, left, unanswered), cancelled

    def _collect(self, run: _Run) -> None:
        """A run that finished while the study was stopping: its final row and its jobs."""
        wid = run.workflow_id or "?"
        try:
            workflow = self.s.get_object(api_path("/projects/{pid}/workflows/{wid}", pid=self.pid, wid=wid))
            run.workflow = workflow
            run.jobs = self._fetch_jobs(workflow.get("jobs") or [], request=self.s.request)
            run.error = _first_error(workflow, run.jobs) if workflow.get("state") in FINISHED else run.error
        except APIError as exc:
            run.error = run.error or f"interrupted before its outputs were fetched: {exc}"
        run.phase = "done"

    def _cancel_late(self, run: _Run) -> None:
        wid = run.workflow_id or "?"
        try:
            run.workflow = cancel_remote(self.s, self.pid, wid)
            run.error = "interrupted: cancelled on the server"
            _LOGGER.warning("study interrupted: workflow %s (run %d) was dispatched late and is now cancelled",
                            wid, run.index)
        except APIError as exc:
            _LOGGER.warning("study interrupted: workflow %s (run %d) could not be cancelled: %s", wid, run.index, exc)

    def _summary(self, cancelled: list[str], left: list[str], unanswered: list[_Run]) -> str:
        finished = sum(1 for r in self.runs if (r.workflow or {}).get("state") in FINISHED - {"canceled"})
        never = sum(1 for r in self.runs if r.workflow is None and r not in unanswered)
        parts = [f"interrupted: cancelled {_plural(len(cancelled), 'workflow')} on the server"
                 + (f" ({', '.join(cancelled)})" if cancelled else "")]
        parts.append(f"{finished} of {len(self.runs)} runs had finished")
        if never:
            parts.append(f"{never} never started")
        if left:
            parts.append(f"not cancelled: workflow {', '.join(left)} (cancel with mf.cancel_workflow(ID))")
        if unanswered:
            parts.append("no answer yet to the dispatch of run " + ", ".join(str(r.index) for r in unanswered)
                         + " (if it started it is cancelled when the answer comes)")
        return "; ".join(parts)

    # -- the result --------------------------------------------------------------------------

    def raise_if_all_refused(self) -> None:
        """Every dispatch refused with the same 4xx (a bad definition): that error, as run_workflow raises it."""
        refusals = [r.refusal for r in self.runs]
        if all(refusals) and len({e.status for e in refusals if e is not None}) == 1:
            raise refusals[0]  # type: ignore[misc]

    def warn_failures(self) -> None:
        failed = [r for r in self.runs if r.failed]
        if not failed:
            return
        shown = [f"run {r.index}" + (f" (workflow {r.workflow_id})" if r.workflow else "")
                 + f": {r.error or (r.workflow or {}).get('state')}" for r in failed[:_SHOWN_FAILURES]]
        more = len(failed) - _SHOWN_FAILURES
        warnings.warn(
            f"{len(failed)} of {len(self.runs)} runs failed: " + "; ".join(shown)
            + (f"; and {more} more" if more > 0 else "") + " (see the error column)",
            WorkflowFailedWarning,
            stacklevel=3,
        )

    def frame(self) -> pd.DataFrame:
        """One typed row per run (see :func:`run_workflows`)."""
        head = _lead_frame(self.table)
        workflows = to_frame([r.workflow or {} for r in self.runs], "workflows")
        head["workflow_id"] = workflows["id"]
        for name in ("state", "created", "started", "finished", "duration"):
            head[name] = workflows[name]
        head["error"] = pd.Series([r.error for r in self.runs], dtype="string")
        outputs = _outputs(self.runs, taken=set(head.columns))
        return pd.concat([head, outputs], axis=1) if len(outputs.columns) else head


def _lead_frame(table: pd.DataFrame) -> pd.DataFrame:
    """``run``, the parameter columns (as given) and the run columns, typed and still empty."""
    rows = len(table)
    frame = pd.DataFrame({"run": pd.Series(range(rows), dtype="int64")})
    for name in table.columns:
        frame[name] = table[name]
    typed = {"workflow_id": "string", "state": "string", "created": DATETIME, "started": DATETIME,
             "finished": DATETIME, "duration": TIMEDELTA, "error": "string"}
    for name in RUN_COLUMNS:
        frame[name] = pd.Series([None] * rows, dtype=typed[name])
    return frame


def _sent_parameters(row: Mapping[str, Any]) -> dict[str, str]:
    """A run's parameters as the API takes them (strings); missing values are not sent."""
    return {key: parameter_text(value) for key, value in row.items() if not _missing(value)}


def _first_error(workflow: Mapping[str, Any], jobs: list[dict[str, Any]]) -> str | None:
    """The first failed job's error (jobs in the workflow's order), or why the workflow did not succeed."""
    state = workflow.get("state")
    if state == "success":
        return None
    for job in jobs:
        if job.get("state") == "failure":
            return str(job.get("error") or f"job {job.get('name')!r} failed without a message")
    return f"the workflow ended in {state}" if state else None


def _outputs(runs: list[_Run], taken: set[str]) -> pd.DataFrame:
    """``<job>.<name>`` columns: output params (typed) and output asset IDs (``string``)."""
    params: dict[str, list[Any]] = {}
    assets: dict[str, list[Any]] = {}
    order: list[tuple[str, str]] = []  # (kind, column) in order of first appearance
    n = len(runs)
    for i, run in enumerate(runs):
        for job in run.jobs:
            name = job.get("name") or f"job-{job.get('id')}"
            out = job.get("outputs") or {}
            for kind, values, store in (("param", out.get("params"), params), ("asset", out.get("assets"), assets)):
                for key, value in (values or {}).items():
                    column = f"{name}.{key}"
                    if column not in store:
                        store[column] = [None] * n
                        order.append((kind, column))
                    store[column][i] = value.get("id") if isinstance(value, Mapping) else value
    columns: dict[str, pd.Series] = {}
    for kind, column in order:
        label = column
        if kind == "asset" and column in params:  # a job with a param and an asset of the same name
            label = f"{column}.asset"
        if label in taken:  # an output named like an input parameter (sample.shape in, sample.shape out)
            label = f"{label}.output"
        if kind == "asset":
            columns[label] = pd.Series([None if v is None else str(v) for v in assets[column]], dtype="string")
        else:
            columns[label] = _typed_output(params[column])
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _typed_output(values: list[Any]) -> pd.Series:
    """Output params: int64 (Int64 with gaps) or float64 when every value is a number,
    ``boolean`` for true/false, ``string`` for other text, object otherwise."""
    present = [v for v in values if v is not None]
    if all(isinstance(v, str) for v in present):
        texts = [v.strip() for v in present]
        if all(_INTEGER.fullmatch(t) for t in texts):
            series = pd.Series([None if v is None else int(v) for v in values], dtype="Int64")
            return series.astype("int64") if not series.isna().any() else series
        if all(_NUMBER.fullmatch(t) for t in texts):
            return pd.Series([float("nan") if v is None else float(v) for v in values], dtype="float64")
        if all(t.lower() in _BOOLEAN for t in texts):
            return pd.Series([None if v is None else v.strip().lower() == "true" for v in values], dtype="boolean")
        return pd.Series(values, dtype="string")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pd.to_numeric(pd.Series(values, dtype=object))
    return pd.Series(values, dtype=object)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
