"""Account-wide frames: one list call per project, run concurrently and politely.

Feature layer (above ``kernel_session``, beside ``frames``). The API has no
cross-project query, so ``mf.jobs(all_projects=True)`` lists the projects, then
fetches every project's list at once through :func:`gather`:

- a bounded thread pool (``Session.concurrency`` workers, never more than the
  connection pool of the session's one keep-alive ``requests.Session`` holds, so
  no connection is ever discarded);
- one :class:`~metafold_jupyter.pacing.Throttle` shared by the workers: a 429 pauses
  every new request until its ``Retry-After`` and halves the requests in flight,
  which then grow back one at a time (see ``pacing``);
- one progress display over the tasks (``tqdm.auto``; ``progress=False`` hides it);
- Ctrl-C cancels what has not started, wakes every waiting worker and returns at
  once; requests already on the wire finish on their own (within their timeout).

:func:`gather` knows nothing about projects, so a parameter study can reuse it
(tasks that hold a throttle slot per request instead of per task).
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable, Hashable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import APIError, ConfigError, InvalidIdError, PartialResultError
from .kernel_session import Session, session as current_session
from .pacing import Throttle
from .paths import api_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["PartialResultWarning", "Outcome", "gather", "account_frame", "LIST_PATHS"]

_LOGGER = logging.getLogger(__name__)

#: The per-project list behind each account-wide frame.
LIST_PATHS = {
    "assets": "/projects/{pid}/assets",
    "jobs": "/projects/{pid}/jobs",
    "workflows": "/projects/{pid}/workflows",
}
#: Failures that belong to one task; anything else (no token, a bug) stops the whole fan-out.
TASK_FAILURES: tuple[type[BaseException], ...] = (APIError, InvalidIdError)
_THREAD_PREFIX = "metafold-fanout"
_TICK = 0.25  # seconds between progress refreshes while nothing finishes
_SORT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(1|-1)\s*$")
_SHOWN_FAILURES = 3


class PartialResultWarning(UserWarning):
    """``on_error="warn"``: some projects failed; the rows that came back are returned."""


# -- the machinery: a bounded, paced pool with one progress display ------------------------


@dataclass
class Outcome:
    """What :func:`gather` brought back, both in the order the tasks were given.

    Attributes:
        results: task key -> its return value, for the tasks that succeeded.
        failures: task key -> the :data:`TASK_FAILURES` exception it raised.
        throttle: the throttle the tasks shared (its counters tell how it went).
    """

    results: dict[Hashable, Any] = field(default_factory=dict)
    failures: dict[Hashable, BaseException] = field(default_factory=dict)
    throttle: Throttle | None = None


def gather(
    tasks: Mapping[Hashable, Callable[[], Any]],
    *,
    concurrency: int,
    throttle: Throttle | None = None,
    progress: bool | None = None,
    desc: str = "",
    unit: str = "task",
    slot_per_task: bool = True,
    failures: tuple[type[BaseException], ...] = TASK_FAILURES,
) -> Outcome:
    """Run ``tasks`` on at most ``concurrency`` threads, sharing one throttle and one progress bar.

    Args:
        tasks: key -> a zero-argument callable (one call per task; it may be slow).
        concurrency: worker threads at most.
        throttle: the pacing to share (a new ``Throttle(concurrency)`` by default).
        progress: ``False`` hides the progress bar.
        desc, unit: the progress bar's label and unit.
        slot_per_task: hold a throttle slot around each whole task (a task that is
            one request). With ``False`` the tasks take ``throttle.slot()`` themselves
            around each request (a task that dispatches and polls, say).
        failures: exception types that fail one task only; any other exception
            cancels the rest and is raised.

    Returns:
        The :class:`Outcome`.

    Raises:
        KeyboardInterrupt: Ctrl-C; nothing new starts, waiting workers wake at once.
    """
    from .operations import progress_bar

    throttle = throttle or Throttle(concurrency)
    outcome = Outcome(throttle=throttle)
    if not tasks:
        return outcome
    workers = max(1, min(concurrency, len(tasks)))

    def run(fn: Callable[[], Any]) -> Any:
        if not slot_per_task:
            return fn()
        with throttle.slot():
            return fn()

    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=_THREAD_PREFIX)
    futures: dict[Future, Hashable] = {}
    results: dict[Hashable, Any] = {}
    failed: dict[Hashable, BaseException] = {}
    try:
        for key, fn in tasks.items():
            futures[executor.submit(run, fn)] = key
        with progress_bar(len(tasks), desc, progress, unit=unit) as bar:
            pending = set(futures)
            shown = ""
            while pending:
                done, pending = wait(pending, timeout=_TICK, return_when=FIRST_COMPLETED)
                for future in done:
                    key = futures[future]
                    exc = future.exception()
                    if exc is None:
                        results[key] = future.result()
                    elif isinstance(exc, failures):
                        failed[key] = exc
                    else:
                        raise exc
                if done:
                    bar.update(len(done))
                note = _progress_note(len(failed), throttle)
                if note != shown:
                    bar.set_postfix_str(note)
                    shown = note
    except BaseException:
        # Ctrl-C or a fatal error: start nothing more, wake sleepers, do not wait for the wire
        throttle.cancel()
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    order = list(tasks)
    outcome.results = {key: results[key] for key in order if key in results}
    outcome.failures = {key: failed[key] for key in order if key in failed}
    return outcome


def _progress_note(failed: int, throttle: Throttle) -> str:
    parts = [f"{failed} failed"] if failed else []
    if throttle.slowdowns:
        parts.append(f"slowed down by the server: {throttle.limit} at a time")
    return ", ".join(parts)


# -- account-wide frames -------------------------------------------------------------------


def account_frame(
    kind: str,
    *,
    project: str | None = None,
    sort: str | None = None,
    q: str | None = None,
    on_error: str = "raise",
    progress: bool | None = None,
    session: Session | None = None,
    throttle: Throttle | None = None,
) -> pd.DataFrame:
    """The ``assets``, ``jobs`` or ``workflows`` of every project as one typed frame.

    Args:
        kind: ``"assets"``, ``"jobs"`` or ``"workflows"``.
        project: must be None (one project is the single-project call); a
            :class:`ConfigError` otherwise, rather than a silent choice of one meaning.
        sort: ``field:1`` or ``field:-1`` (as the API takes it), applied to the
            combined frame; without it, rows come newest ID first, as the API lists them.
        q: the API's filter, sent with every project's call.
        on_error: ``"raise"`` (:class:`PartialResultError`) or ``"warn"``
            (:class:`PartialResultWarning`, and the rows that came back) when some
            projects fail.
        progress: ``False`` hides the progress bar.
        session: default: the kernel-level session.
        throttle: the pacing to use (default: a new one at ``session.concurrency``).

    Raises:
        PartialResultError: some projects failed (``on_error="raise"``).
        APIError: every project failed with the same client error (a bad ``sort``
            or ``q``), or the project list itself failed.
    """
    from .frames import query_params, to_frame

    if kind not in LIST_PATHS:
        raise ValueError(f"kind must be one of {', '.join(LIST_PATHS)}, not {kind!r}")
    if on_error not in ("raise", "warn"):
        raise ValueError(f"on_error must be 'raise' or 'warn', not {on_error!r}")
    if project is not None:
        raise ConfigError(
            "a project and all projects at once",
            hint="drop project= (--project) to get every project's rows, or all_projects (--all-projects) for one",
        )
    s = session or current_session()
    workers = workers_for(s)
    throttle = throttle or Throttle(workers)
    with throttle.slot():
        projects = s.get_records("/projects", what="projects")  # a malformed answer is one APIError line
    ids = list(dict.fromkeys(str(p["id"]) for p in projects if p.get("id") is not None))
    params = query_params(sort, q)
    template = LIST_PATHS[kind]

    def fetch(pid: str) -> Callable[[], list[Any]]:
        return lambda: _owned(s.get_records(api_path(template, pid=pid), params, what=kind), pid)

    outcome = gather(
        {pid: fetch(pid) for pid in ids},
        concurrency=workers,
        throttle=throttle,
        progress=progress,
        desc=f"{kind} of every project",
        unit="project",
    )
    records: list[Any] = []
    for body in outcome.results.values():
        records.extend(body)
    frame = _order(to_frame(records, kind), sort)
    if not outcome.failures:
        return frame
    _raise_if_all_refused(outcome, len(ids))
    message = _summary(kind, outcome.failures, len(ids), len(frame))
    if on_error == "warn":
        warnings.warn(message, PartialResultWarning, stacklevel=4)  # the caller of mf.jobs()
        return frame
    raise PartialResultError(
        message,
        frame=frame,
        failures=_failures_frame(outcome.failures),
        hint="the rows that came back are in .frame, the failed projects in .failures; "
        "run it again, or pass on_error='warn' to get the rows with a warning",
    )


def workers_for(s: Session) -> int:
    """``s.concurrency``, but never more than the connection pool keeps (no discarded connections)."""
    workers = s.concurrency
    adapter = s.http.get_adapter(s.base_url)
    pool = getattr(adapter, "_pool_maxsize", None)  # requests keeps the size it built the pool with
    if isinstance(pool, int) and 0 < pool < workers:
        _LOGGER.info("the connection pool holds %d connections: running %d requests at a time, not %d",
                     pool, pool, workers)
        workers = pool
    return workers


def _owned(records: list[dict[str, Any]], pid: str) -> list[dict[str, Any]]:
    """The project's list, each record marked with its project (the API already does so)."""
    if all(r.get("project_id") is not None for r in records):
        return records
    return [{**r, "project_id": r.get("project_id") or pid} for r in records]


def _raise_if_all_refused(outcome: Outcome, total: int) -> None:
    """Every project refused the call the same way (400 for a bad sort or q): that error, plainly."""
    errors = list(outcome.failures.values())
    if outcome.results or len(errors) != total:
        return
    first = errors[0]
    status = getattr(first, "status", None)
    if status is not None and 400 <= status < 500 and status not in (404, 429) and all(
        getattr(e, "status", None) == status for e in errors
    ):
        raise first


def _failures_frame(failures: Mapping[Hashable, BaseException]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({
        "project_id": pd.Series([str(k) for k in failures], dtype="string"),
        "status": pd.Series([getattr(e, "status", None) for e in failures.values()], dtype="Int64"),
        "message": pd.Series([_message(e) for e in failures.values()], dtype="string"),
    })


def _message(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return exc.message
    return str(exc) or type(exc).__name__


def _summary(kind: str, failures: Mapping[Hashable, BaseException], total: int, rows: int) -> str:
    parts = []
    for pid, exc in list(failures.items())[:_SHOWN_FAILURES]:
        status = getattr(exc, "status", None)
        parts.append(f"project {pid} ({'no answer' if status is None else f'HTTP {status}'}: {_message(exc)})")
    more = len(failures) - _SHOWN_FAILURES
    if more > 0:
        parts.append(f"and {more} more")
    return (
        f"{kind} of {len(failures)} of {total} projects could not be fetched: {', '.join(parts)}; "
        f"{rows} rows from the other {total - len(failures)} came back"
    )


# -- sorting the combined frame as the API sorts one list ---------------------------------------


def _order(frame: pd.DataFrame, sort: str | None) -> pd.DataFrame:
    """Newest ID first, then (stably) by the ``sort`` key, the way the API orders one list.

    IDs compare as numbers when they are numbers, text case-insensitively; missing
    values come last ascending and first descending (as in PostgreSQL).
    """
    if frame.empty:
        return frame
    by_id = frame.loc[_id_key(frame["id"]).sort_values(ascending=False, kind="stable").index]
    if not sort:
        return by_id.reset_index(drop=True)
    match = _SORT.match(sort)
    if match is None or match.group(1).lower() not in frame.columns:
        warnings.warn(
            f"sort {sort!r} was sent to every project but could not be applied to the combined frame "
            "(expected field:1 or field:-1 on one of its columns); rows are newest ID first",
            UserWarning,
            stacklevel=5,
        )
        return by_id.reset_index(drop=True)
    name, descending = match.group(1).lower(), match.group(2) == "-1"
    if name == "id":
        ordered = by_id if descending else by_id.iloc[::-1]
    else:
        ordered = by_id.sort_values(
            name, ascending=not descending, kind="stable",
            na_position="first" if descending else "last", key=_text_key,
        )
    return ordered.reset_index(drop=True)


def _id_key(ids: pd.Series) -> pd.Series:
    import pandas as pd

    numbers = pd.to_numeric(ids.astype(object), errors="coerce")
    if numbers.notna().all():
        return numbers
    return ids.astype("string").str.casefold()


def _text_key(values: pd.Series) -> pd.Series:
    if values.dtype == "string" or values.dtype == object:
        return values.astype("string").str.casefold()
    return values
