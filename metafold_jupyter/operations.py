"""Operations: asset download and upload, workflow runs, and the official SDK client.

Long operations show progress with ``tqdm.auto`` (a widget in notebooks, text in
terminals); ``progress=False`` turns it off. Library code never prints: results are
returned, problems raised, and a failed workflow is reported with a warning.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import re
import tempfile
import threading
import time
import unicodedata
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests
import urllib3

from .answers import object_of
from .config import ConfigError, check_secure_url, origin_of
from .errors import APIError, DestinationExistsError, IntegrityError, MetafoldError, PollTimeout, TransportError
from .frames import to_frame
from .kernel_session import session
from .pacing import parse_retry_after
from .paths import api_path
from .transport import attempt_budget

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_LOGGER = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB: few Python-level iterations, small peak memory
POLL_FIRST = 0.5  # seconds before the first status poll
POLL_GROWTH = 1.5
POLL_MAX = 5.0
FINISHED = frozenset({"success", "failure", "canceled"})


#: A streamed download is stalled when fewer bytes than this arrive within one stall window
#: (connect + 2 x read timeout: 63 s by default, i.e. below ~260 B/s).
STALL_MIN_BYTES = 16 * 1024
_MAX_NAME_BYTES = 255  # the longest file name most file systems take
_WINDOWS_DEVICES = re.compile(r"(?i)^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$")


class WorkflowFailedWarning(UserWarning):
    """A workflow finished in failure (or was canceled); its jobs are still returned."""


class UnverifiedDownloadWarning(UserWarning):
    """The API gave neither a size nor a checksum for a download, so it could not be checked."""


# -- progress ---------------------------------------------------------------------


@contextmanager
def progress_bar(total: float | None, desc: str, enabled: bool | None, **kw: Any) -> Iterator[Any]:
    """A tqdm.auto bar, or a do-nothing stand-in when progress is off."""
    if enabled is False:
        yield _NoBar()
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, leave=True, dynamic_ncols=True, **kw)
    try:
        yield bar
    finally:
        bar.close()


class _NoBar:
    n: float = 0

    def update(self, n: float = 1) -> None:
        self.n += n

    def reset(self, total: float | None = None) -> None:
        self.n = 0

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def refresh(self) -> None:
        pass


# -- download ---------------------------------------------------------------------


def download_asset(
    asset_id: str,
    dest: str | os.PathLike | None = None,
    project: str | None = None,
    *,
    progress: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Download an asset to disk, streamed, checked, and moved into place atomically.

    The signed link is fetched without the token. The status, the size and the
    ``sha256`` checksum are checked; on any failure no partial file is left behind.
    An existing file is never replaced unless ``overwrite=True``, and a file name
    sent by the server is used only if it is a plain, visible name (not ``.env``,
    ``..``, a path, control characters or over-long).

    Args:
        dest: a file path, or a directory (default: the working directory) to put
            the asset's own filename in.
        overwrite: replace an existing file at the destination.

    Returns:
        The path of the downloaded file.

    Raises:
        DestinationExistsError: the destination exists and ``overwrite`` is False.
        APIError: the API or the link host answered with an error, or an unusable answer.
        TransportError: the transfer was interrupted or stalled.
        IntegrityError: the size or the checksum does not match.
        MetafoldError: the server's file name is unsafe, or the destination cannot be written.
    """
    s = session()
    target, _ = download_checked(s, s.require_project(project), asset_id, dest, progress=progress, overwrite=overwrite)
    return target


def download_checked(
    s: Any, pid: str, asset_id: str, dest: str | os.PathLike | None, *, progress: bool | None, overwrite: bool
) -> tuple[Path, dict[str, Any]]:
    """:func:`download_asset` for callers that need the record it checked the file against.

    Returns:
        The downloaded file and the asset record (``checksum``, ``size``...) it was verified with.
    """
    path = api_path("/projects/{pid}/assets/{aid}", pid=pid, aid=asset_id)
    meta = _link_answer(s, path)
    link = str(meta["link"])
    try:
        check_secure_url(link, "download link")
    except ConfigError as exc:
        raise APIError(200, "GET", s.base_url + path.lstrip("/"), exc.message) from None
    expected_size = _expected_size(meta, s.base_url + path.lstrip("/"))
    if expected_size is None and not meta.get("checksum"):
        warnings.warn(
            f"asset {asset_id}: the API gave neither its size nor its checksum, so the download is not verified",
            UnverifiedDownloadWarning,
            stacklevel=3,  # the caller of download_asset
        )
    target = _target_path(dest, meta.get("filename"), s)
    if not overwrite and os.path.lexists(target):  # fail before spending the bandwidth
        raise DestinationExistsError(f"{target} already exists; the download would replace it")
    received = 0
    with ExitStack() as stack:  # every path closes the response, the hash thread and the temp file
        try:
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name[:200]}.", suffix=".part")
        except OSError as exc:
            raise _write_error(target.parent, exc) from None
        stack.callback(_unlink, tmp_name)  # a no-op once the file has been moved into place
        out = stack.enter_context(os.fdopen(fd, "wb"))
        resp = s.request("GET", link, authorize=False, stream=True)
        stack.callback(resp.close)
        digest = stack.enter_context(ParallelDigest())
        bar = stack.enter_context(progress_bar(
            expected_size, f"download {target.name}", progress, unit="B", unit_scale=True, unit_divisor=1024
        ))
        stall = _StallDetector(attempt_budget(s.settings.timeout))
        failure: TransportError | None
        try:
            for chunk in _chunks(resp, stall):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            if isinstance(exc, OSError) and not isinstance(exc, (ConnectionError, TimeoutError)) and exc.errno:
                raise _write_error(target.parent, exc) from None
            failure = TransportError(
                "GET", link, f"the download was interrupted after {received} of {expected_size or '?'} bytes"
            )
        except _Stalled as stalled:
            failure = TransportError(
                "GET", link, f"the download stalled after {received} of {expected_size or '?'} bytes: {stalled}"
            )
        else:
            failure = None
        if failure is not None:
            raise failure  # outside the except block: no context chain
        out.close()
        _verify(s, meta, expected_size, received, "sha256:" + digest.hexdigest(), target.name)
        _place(tmp_name, target, overwrite)
    _LOGGER.info("downloaded asset %s to %s (%d bytes)", asset_id, target, received)
    return target, meta


def _link_answer(s: Any, path: str) -> dict[str, Any]:
    """The download-link answer, completed from the asset's metadata when it carries only ``link``."""
    meta = s.get_object(path, params={"download": "true"})
    url = s.base_url + path.lstrip("/") + "?download=true"
    if not meta.get("link") or not isinstance(meta["link"], str):
        raise APIError(200, "GET", url, "the answer has no download link")
    if not all(meta.get(key) is not None for key in ("filename", "size", "checksum")):
        # The SDKs read only "link", and some answers carry nothing else: the asset's own
        # record has the name, the size and the checksum.
        asset = s.get_object(path)
        known = {k: v for k, v in meta.items() if v is not None}
        meta = {**{k: v for k, v in asset.items() if v is not None}, **known}
    return meta


def _expected_size(meta: Mapping[str, Any], url: str) -> int | None:
    """The API's size as a whole number of bytes (None when it gives none)."""
    size = meta.get("size")
    if size is None:
        return None
    if isinstance(size, str) and size.strip().isdigit():
        return int(size.strip())
    if isinstance(size, int) and not isinstance(size, bool) and size >= 0:
        return size
    if isinstance(size, float) and size.is_integer() and size >= 0:
        return int(size)
    shown = repr(size) if len(repr(size)) <= 40 else repr(size)[:37] + "..."
    raise APIError(200, "GET", url, f"the asset's size {shown} is not a whole number of bytes",
                   hint="the server does not answer like the Metafold API; check METAFOLD_BASE_URL")


class _Stalled(Exception):
    pass


class _StallDetector:
    """Raises when fewer than ``STALL_MIN_BYTES`` arrive within ``window`` seconds.

    The read timeout catches a server that sends nothing; this catches one that
    trickles a byte now and then to stay under it.
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._start = time.monotonic()
        self._bytes = 0

    def update(self, n: int) -> None:
        self._bytes += n
        now = time.monotonic()
        if now - self._start >= self.window:
            if self._bytes < STALL_MIN_BYTES:
                raise _Stalled(f"{self._bytes} bytes in the last {now - self._start:.0f} s")
            self._start, self._bytes = now, 0


def _chunks(resp: requests.Response, stall: _StallDetector) -> Iterator[bytes]:
    """The body in chunks of up to CHUNK_SIZE, read one receive at a time so that a stall is seen."""
    raw = resp.raw
    buffer = bytearray()
    while True:
        piece = raw.read1(CHUNK_SIZE, decode_content=True)
        if not piece:
            break
        stall.update(len(piece))
        if not buffer and len(piece) >= CHUNK_SIZE // 2:
            yield piece  # large reads go through as they are
            continue
        buffer += piece
        if len(buffer) >= CHUNK_SIZE // 2:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


class ParallelDigest:
    """sha256 in a helper thread, overlapping the socket reads and file writes.

    hashlib releases the GIL on large buffers, so hashing a chunk while the next one
    is received and the last one written costs no wall time; a serial hash would cut
    download throughput by a third. The queue is bounded (a few chunks) to keep
    memory flat. A context manager: leaving it always stops the thread.
    """

    def __enter__(self) -> ParallelDigest:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __init__(self, depth: int = 4) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=depth)
        self._hash = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="metafold-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._hash.update(chunk)

    def update(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def hexdigest(self) -> str:
        self.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()


def _target_path(dest: str | os.PathLike | None, filename: Any, s: Any) -> Path:
    """Where the download goes: ``dest`` as a file, or the server's file name in ``dest`` (a directory)."""
    try:
        if dest is not None:
            path = Path(dest).expanduser()
            if not (path.is_dir() or str(dest).endswith(os.sep)):
                path.parent.mkdir(parents=True, exist_ok=True)
                return path  # the user's own choice of name
            path.mkdir(parents=True, exist_ok=True)
            directory = path
        else:
            directory = Path.cwd()
    except OSError as exc:
        raise _write_error(Path(dest) if dest is not None else Path.cwd(), exc) from None
    return directory / safe_filename(filename, s)


def safe_filename(name: Any, s: Any = None) -> str:
    """A file name sent by the server, if it is safe to create in the user's directory.

    Refused (with what to do): not a string, empty, ``.``/``..``, a path (``/`` or
    ``\\``), a leading dot (``.env``, ``.bashrc``, ``.ipython``: hidden files that
    configure tools), control or invisible format characters, over 255 bytes, and on
    Windows its device names (``CON``, ``NUL``...).

    Raises:
        MetafoldError: the name is unsafe; pass a destination file name instead.
    """
    problem = _name_problem(name)
    if problem is None:
        return name
    shown = repr(name)[:60] if isinstance(name, str) else type(name).__name__
    if s is not None:
        shown = s.scrub(shown)
    raise MetafoldError(
        f"the server's file name {shown} is not safe to create here: {problem}",
        hint="pass the destination file name yourself, e.g. mf.download_asset(ID, 'part.stl') "
        "(%metafold download ID part.stl)",
    )


def _name_problem(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return "it is missing, empty or not text"
    if name in (".", ".."):
        return "it names a directory"
    if "/" in name or "\\" in name:
        return "it is a path, not a file name"
    if name.startswith("."):
        return "it starts with a dot (a hidden file, such as .env, that configures tools)"
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        return "it holds control or invisible characters"
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"it is longer than {_MAX_NAME_BYTES} bytes"
    if name != name.strip() or name.endswith("."):
        return "it starts or ends with a space, or ends with a dot"
    if os.name == "nt" and _WINDOWS_DEVICES.match(name):
        return "it is a Windows device name"
    return None


def _write_error(directory: Path, exc: OSError) -> MetafoldError:
    return MetafoldError(
        f"cannot write the download into {directory}: {exc.strerror or type(exc).__name__}",
        hint="choose a destination you can write to (dest=... / %metafold download ID DEST)",
    )


def _place(tmp_name: str, target: Path, overwrite: bool) -> None:
    """Move the finished download into place; without ``overwrite``, never over an existing file."""
    if overwrite:
        os.replace(tmp_name, target)
        return
    try:
        os.link(tmp_name, target)  # atomic, and fails if anything (a file, a symlink) is there
    except FileExistsError:
        raise DestinationExistsError(f"{target} already exists; the download would replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise _write_error(target.parent, exc) from None
        # no hard links here (FAT, some network shares): check, then rename
        if os.path.lexists(target):
            raise DestinationExistsError(f"{target} already exists; the download would replace it") from None
        os.replace(tmp_name, target)
    else:
        _unlink(tmp_name)


def _verify(s: Any, meta: Mapping[str, Any], expected_size: int | None, received: int, actual: str, name: str) -> None:
    if expected_size is not None and received != expected_size:
        raise IntegrityError(f"{name}: received {received} bytes, expected {expected_size}")
    expected = meta.get("checksum")
    if expected and str(expected).lower() != actual:
        shown = s.scrub(str(expected)[:100])
        raise IntegrityError(f"{name}: checksum mismatch (expected {shown}, got {actual})", expected=shown,
                             actual=actual)


def _unlink(name: str) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


# -- upload -----------------------------------------------------------------------


def upload_asset(path: str | os.PathLike, project: str | None = None, *, progress: bool | None = None) -> pd.DataFrame:
    """Upload a file as a new asset (streamed multipart) and return its one-row frame.

    Raises:
        MetafoldError: the file does not exist, or the project already has an asset
            with that filename (filenames are unique per project).
    """
    from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

    file = Path(path).expanduser()
    if not file.is_file():
        raise MetafoldError(f"file {str(file)!r} does not exist", hint="check the path (relative to the working directory)")
    s = session()
    pid = s.require_project(project)
    assets_path = api_path("/projects/{pid}/assets", pid=pid)
    if '"' not in file.name:
        same = s.get_records(assets_path, params={"q": f'filename:"{file.name}"'}, what="assets")
        same = [a for a in same if a.get("filename") == file.name]
        if same:
            raise MetafoldError(
                f"project {pid} already has an asset named {file.name!r} (id {same[0]['id']})",
                hint="rename the file, or delete that asset first",
            )
    boundary = uuid.uuid4().hex
    size = file.stat().st_size
    with ExitStack() as stack:
        bar = stack.enter_context(
            progress_bar(size, f"upload {file.name}", progress, unit="B", unit_scale=True, unit_divisor=1024)
        )

        def body() -> MultipartEncoderMonitor:
            # a fresh stream for each attempt, so a 401 replay can send it again
            handle = stack.enter_context(open(file, "rb"))
            encoder = MultipartEncoder({"file": (file.name, handle, "application/octet-stream")}, boundary=boundary)
            bar.reset()
            sent = [0]

            def advance(monitor: MultipartEncoderMonitor) -> None:
                step = min(monitor.bytes_read, size) - sent[0]
                if step > 0:
                    bar.update(step)
                    sent[0] += step

            return MultipartEncoderMonitor(encoder, advance)

        resp = s.request(
            "POST",
            assets_path,
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    return to_frame(object_of(resp), "assets")


# -- workflows --------------------------------------------------------------------


def run_workflow(
    definition: str | Mapping[str, Any] | os.PathLike,
    parameters: Mapping[str, Any] | None = None,
    assets: Mapping[str, str] | None = None,
    project: str | None = None,
    timeout: float = 600,
    wait: bool = True,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Dispatch a workflow and (by default) wait for it, showing live progress.

    Args:
        definition: the workflow YAML (a top-level ``jobs:`` mapping), a dict, or a
            path to a YAML file.
        parameters: ``{"job.param": value}``; values are sent as strings (text as it is,
            anything else as JSON: ``true``, ``0.5``, ``[16, 16, 16]``).
        assets: ``{"job.input": asset}`` where ``asset`` is an asset ID or filename
            in the project.
        timeout: seconds to wait before :class:`PollTimeout` (the workflow goes on).
        wait: ``False`` returns the dispatched workflow's row at once.

    Returns:
        One row per job of the finished workflow (``wait=True``), or the workflow row.

    Raises:
        PollTimeout: not finished within ``timeout``.
        KeyboardInterrupt: interrupted while waiting; the remote workflow was cancelled.
    """
    s = session()
    pid = s.require_project(project)
    payload: dict[str, Any] = {"definition": definition_text(definition)}
    if parameters:
        payload["parameters"] = parameter_texts(parameters)
    if assets:
        payload["assets"] = asset_filenames(s, pid, assets)
    started = time.monotonic()
    dispatch = api_path("/projects/{pid}/workflows", pid=pid)
    workflow = dispatched_workflow(s, s.request("POST", dispatch, json=payload), dispatch)
    wid = str(workflow["id"])
    _LOGGER.info("dispatched workflow %s in project %s", wid, pid)
    if not wait:
        return to_frame(workflow, "workflows")
    link = status_link(s, pid, wid, workflow)
    job_ids = [str(j) for j in workflow.get("jobs") or [] if isinstance(j, (str, int))]
    try:
        final = _wait(s, pid, wid, link, job_ids, started + timeout, timeout, progress)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_cancel(s, pid, wid)) from None
    jobs = _workflow_jobs(s, pid, wid, [str(j) for j in final.get("jobs") or job_ids])
    if final.get("state") != "success":
        _warn_failed(s, final, jobs)
    return to_frame(jobs, "jobs")


def _wait(s: Any, pid: str, wid: str, link: str, job_ids: list[str], deadline: float, timeout: float,
          progress: bool | None) -> dict[str, Any]:
    """Wait for one workflow with its own progress bar (jobs finished / jobs)."""
    with progress_bar(len(job_ids) or None, f"workflow {wid}", progress, unit="job") as bar:
        bar.set_postfix_str("pending")

        def tick(state: str) -> None:
            if progress is not False and job_ids:
                done = _finished_jobs(s, pid, wid)
                if done > bar.n:
                    bar.update(done - bar.n)
            bar.set_postfix_str(s.scrub(state))

        body = poll_status(lambda: s.request("GET", link), wid, deadline=deadline, timeout=timeout, on_poll=tick)
        bar.update(len(job_ids) - bar.n)
        bar.set_postfix_str(s.scrub(str(body.get("state", "finished")))[:40])
        return body


def dispatched_workflow(s: Any, resp: requests.Response, path: str) -> dict[str, Any]:
    """The answer to a dispatch (``POST .../workflows``): a workflow object with an ``id``.

    Raises:
        APIError: the answer is not a JSON object with an ``id`` (one line).
    """
    url = s.base_url + path.lstrip("/")
    workflow = object_of(resp)
    if workflow.get("id") is None:
        raise APIError(resp.status_code, "POST", url, "the dispatched workflow has no id")
    return workflow


def status_link(s: Any, pid: str, wid: str, workflow: Mapping[str, Any]) -> str:
    """Where to poll a dispatched workflow: its ``link`` when that is on the API origin, else
    ``/projects/{pid}/workflows/{wid}/status`` (the reference's dispatch answer has no link).

    The status link carries the token, so a link to another origin is never followed.
    """
    link = workflow.get("link")
    if isinstance(link, str) and origin_of(s._transport.url_for(link)) == s.settings.api_origin:
        return link
    return api_path("/projects/{pid}/workflows/{wid}/status", pid=pid, wid=wid)


def poll_status(
    get: Callable[[], requests.Response],
    wid: str,
    *,
    deadline: float,
    timeout: float,
    sleep: Callable[[float], None] = time.sleep,
    on_poll: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Poll a workflow's status link until it finishes: one GET per tick, the tick growing.

    The first poll comes after :data:`POLL_FIRST` seconds, then each pause grows by
    :data:`POLL_GROWTH` up to :data:`POLL_MAX`; a ``Retry-After`` on a 202 replaces it.

    Args:
        get: sends one status GET (202 ``{"state"}`` while running, 201 the finished workflow).
        wid: the workflow's ID (for :class:`PollTimeout`).
        deadline: ``time.monotonic()`` value after which to give up.
        timeout: the timeout the deadline came from (for the message).
        sleep: waits between polls (a study passes its throttle's interruptible wait).
        on_poll: called with the state after each poll that found it still running.

    Returns:
        The finished workflow's JSON body.

    Raises:
        PollTimeout: still running at the deadline (it goes on remotely).
    """
    interval = pause = POLL_FIRST
    state = "pending"
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise PollTimeout(wid, timeout, state)
        sleep(min(pause, deadline - now))
        resp = get()
        body = object_of(resp)
        if resp.status_code != 202:
            return body
        state = str(body.get("state", state))[:40]
        if on_poll is not None:
            on_poll(state)
        interval = min(interval * POLL_GROWTH, POLL_MAX)
        pause = parse_retry_after(resp.headers.get("Retry-After")) or interval  # the server's Retry-After wins


def _finished_jobs(s: Any, pid: str, wid: str) -> int:
    jobs = s.get_records(api_path("/projects/{pid}/jobs", pid=pid), what="jobs")
    return sum(1 for j in jobs if str(j.get("workflow_id")) == wid and j.get("state") in FINISHED)


def _workflow_jobs(s: Any, pid: str, wid: str, order: list[str]) -> list[dict[str, Any]]:
    jobs = [j for j in s.get_records(api_path("/projects/{pid}/jobs", pid=pid), what="jobs")
            if str(j.get("workflow_id")) == wid]
    rank = {jid: i for i, jid in enumerate(order)}
    return sorted(jobs, key=lambda j: rank.get(str(j.get("id")), len(rank)))


def cancel_remote(s: Any, pid: str, wid: str) -> dict[str, Any]:
    """``POST .../workflows/{wid}/cancel`` (sent once, as every POST); the workflow's JSON.

    Raises:
        APIError: refused (400 once the workflow has finished) or no answer.
    """
    return object_of(s.request("POST", api_path("/projects/{pid}/workflows/{wid}/cancel", pid=pid, wid=wid)))


def _cancel(s: Any, pid: str, wid: str) -> str:
    try:
        cancel_remote(s, pid, wid)
    except APIError as exc:
        message = f"interrupted; workflow {wid} could not be cancelled ({exc.message})"
    else:
        message = f"interrupted; workflow {wid} was cancelled on the server"
    _LOGGER.warning(message)
    return message


def _warn_failed(s: Any, workflow: Mapping[str, Any], jobs: list[dict[str, Any]]) -> None:
    state = workflow.get("state")
    failed = [j for j in jobs if j.get("state") == "failure"]
    details = "; ".join(f"job {j.get('name')!r} ({j.get('type')}): {j.get('error') or 'no error message'}" for j in failed)
    warnings.warn(
        s.scrub(f"workflow {workflow.get('id')} ended in {state}" + (f": {details}" if details else "")),
        WorkflowFailedWarning,
        stacklevel=3,
    )


def parameter_texts(parameters: Mapping[str, Any]) -> dict[str, str]:
    """``{"job.param": value}`` as the API takes it: every value a string (see :func:`parameter_text`)."""
    return {str(k): parameter_text(v) for k, v in parameters.items()}


def parameter_text(value: Any) -> str:
    """One parameter value as a string: text as it is, anything else as JSON.

    The API's parameters are strings and the workflow YAML's are JSON-like, so
    ``True`` is sent as ``true`` and ``[16, 16, 16]`` as ``[16, 16, 16]``; numpy
    scalars count as the Python numbers they hold (``np.float64(0.5)`` -> ``0.5``).
    """
    if isinstance(value, str):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()  # a numpy scalar
    try:
        return json.dumps(value, default=_json_default)
    except (TypeError, ValueError):
        return str(value)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()  # numpy arrays and scalars inside lists
    raise TypeError(type(value).__name__)


def definition_text(definition: str | Mapping[str, Any] | os.PathLike) -> str:
    """The workflow YAML to send: a string as it is, a dict dumped, a path read."""
    if isinstance(definition, Mapping):
        import yaml

        return yaml.safe_dump(dict(definition), sort_keys=False)
    if isinstance(definition, os.PathLike):
        return Path(definition).read_text()
    if not isinstance(definition, str) or not definition.strip():
        raise MetafoldError("the workflow definition is empty", hint="give YAML with a top-level 'jobs:' mapping")
    return definition


def asset_filenames(s: Any, pid: str, assets: Mapping[str, str]) -> dict[str, str]:
    """Map asset IDs to filenames (the API wants filenames); filenames pass through."""
    records = s.get_records(api_path("/projects/{pid}/assets", pid=pid), what="assets")
    known = {str(a["id"]): str(a["filename"]) for a in records if a.get("id") is not None and a.get("filename")}
    return {str(k): known.get(str(v), str(v)) for k, v in assets.items()}


# -- the official SDK -------------------------------------------------------------------


class _SessionTokenProvider:
    """Duck-types the SDK's AuthProvider: every SDK call gets this session's current token."""

    def __init__(self, s: Any) -> None:
        self._session = s

    def get_token(self) -> str:
        return self._session.access_token()

    def __repr__(self) -> str:
        return "<session token provider>"


def sdk_client(project: str | None = None) -> Any:
    """An official ``metafold.MetafoldClient`` sharing this session's (refreshed) token.

    Raises:
        MetafoldError: the optional ``metafold`` package is not installed.
    """
    try:
        from metafold import MetafoldClient
    except ImportError:
        raise MetafoldError(
            "the official Metafold SDK (package 'metafold') is not installed",
            hint="pip install 'metafold-jupyter[sdk]' (the SDK needs Python >= 3.11)",
        ) from None
    s = session()
    client = MetafoldClient(access_token=s.access_token(), project_id=project or s.project_id, base_url=s.base_url)
    # Share the session's token source instead of a fixed header, so the SDK client
    # keeps working after the token is refreshed (the SDK calls auth.get_token()).
    http = getattr(client, "_session", None)
    if http is not None and hasattr(client, "_auth"):
        http.headers.pop("Authorization", None)
        client._auth = _SessionTokenProvider(s)
    return client
