"""Operations: asset download and upload, workflow runs, and the official SDK client.

Long operations show progress with ``tqdm.auto`` (a widget in notebooks, text in
terminals); ``progress=False`` turns it off. Library code never prints: results are
returned, problems raised, and a failed workflow is reported with a warning.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from .config import check_secure_url
from .errors import APIError, IntegrityError, MetafoldError, PollTimeout, TransportError
from .frames import to_frame
from .kernel_session import session

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

_LOGGER = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20  # 1 MiB: few Python-level iterations, small peak memory
POLL_FIRST = 0.5  # seconds before the first status poll
POLL_GROWTH = 1.5
POLL_MAX = 5.0
FINISHED = frozenset({"success", "failure", "canceled"})


class WorkflowFailedWarning(UserWarning):
    """A workflow finished in failure (or was canceled); its jobs are still returned."""


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
) -> Path:
    """Download an asset to disk, streamed, checked, and renamed into place atomically.

    The signed link is fetched without the token. The status, the size and the
    ``sha256`` checksum are checked; on any failure no partial file is left behind.

    Args:
        dest: a file path, or a directory (default: the working directory) to put
            the asset's own filename in.

    Returns:
        The path of the downloaded file.

    Raises:
        APIError: the API or the link host answered with an error.
        TransportError: the transfer was interrupted.
        IntegrityError: the size or the checksum does not match.
    """
    s = session()
    pid = s.require_project(project)
    meta = s.get_json(f"/projects/{pid}/assets/{asset_id}", params={"download": "true"})
    link = meta.get("link")
    if not link:
        raise APIError(200, "GET", s.base_url + f"projects/{pid}/assets/{asset_id}", "the answer has no download link")
    check_secure_url(link, "download link")
    target = _target_path(dest, str(meta["filename"]))
    resp = s.request("GET", link, authorize=False, stream=True)
    # the API's size is the truth; a short body with a matching Content-Length is still short
    expected_size = int(meta["size"]) if meta.get("size") is not None else None
    digest = ParallelDigest()
    received = 0
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, progress_bar(
            expected_size, f"download {target.name}", progress, unit="B", unit_scale=True, unit_divisor=1024
        ) as bar:
            try:
                for chunk in resp.iter_content(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except requests.RequestException:
                raise TransportError(
                    "GET", link, f"the download was interrupted after {received} of {expected_size or '?'} bytes"
                ) from None
        _verify(meta, expected_size, received, "sha256:" + digest.hexdigest(), target.name)
        os.replace(tmp_name, target)
    except BaseException:
        _unlink(tmp_name)
        raise
    finally:
        digest.close()
        resp.close()
    _LOGGER.info("downloaded asset %s to %s (%d bytes)", asset_id, target, received)
    return target


class ParallelDigest:
    """sha256 in a helper thread, overlapping the socket reads and file writes.

    hashlib releases the GIL on large buffers, so hashing a chunk while the next one
    is received and the last one written costs no wall time; a serial hash would cut
    download throughput by a third. The queue is bounded (a few chunks) to keep
    memory flat.
    """

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


def _target_path(dest: str | os.PathLike | None, filename: str) -> Path:
    name = Path(filename).name or "asset"  # never let a server-sent name escape the directory
    if dest is None:
        return Path.cwd() / name
    path = Path(dest).expanduser()
    if path.is_dir() or str(dest).endswith(os.sep):
        path.mkdir(parents=True, exist_ok=True)
        return path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _verify(meta: Mapping[str, Any], expected_size: int | None, received: int, actual: str, name: str) -> None:
    if expected_size is not None and received != expected_size:
        raise IntegrityError(f"{name}: received {received} bytes, expected {expected_size}")
    expected = meta.get("checksum")
    if expected and str(expected).lower() != actual:
        raise IntegrityError(
            f"{name}: checksum mismatch (expected {expected}, got {actual})", expected=str(expected), actual=actual
        )


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
    if '"' not in file.name:
        same = s.get_json(f"/projects/{pid}/assets", params={"q": f'filename:"{file.name}"'})
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
            f"/projects/{pid}/assets",
            data=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    return to_frame(resp.json(), "assets")


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
        parameters: ``{"job.param": value}``; values are sent as strings.
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
    payload: dict[str, Any] = {"definition": _definition_text(definition)}
    if parameters:
        payload["parameters"] = {str(k): v if isinstance(v, str) else str(v) for k, v in parameters.items()}
    if assets:
        payload["assets"] = _asset_filenames(s, pid, assets)
    started = time.monotonic()
    workflow = s.request("POST", f"/projects/{pid}/workflows", json=payload).json()
    wid = str(workflow["id"])
    _LOGGER.info("dispatched workflow %s in project %s", wid, pid)
    if not wait:
        return to_frame(workflow, "workflows")
    link = workflow.get("link") or f"/projects/{pid}/workflows/{wid}/status"
    job_ids = [str(j) for j in workflow.get("jobs") or []]
    try:
        final = _wait(s, pid, wid, link, job_ids, started + timeout, timeout, progress)
    except KeyboardInterrupt:
        raise KeyboardInterrupt(_cancel(s, pid, wid)) from None
    jobs = _workflow_jobs(s, pid, wid, [str(j) for j in final.get("jobs") or job_ids])
    if final.get("state") != "success":
        _warn_failed(final, jobs)
    return to_frame(jobs, "jobs")


def _wait(s: Any, pid: str, wid: str, link: str, job_ids: list[str], deadline: float, timeout: float,
          progress: bool | None) -> dict[str, Any]:
    """Poll the status link (202 while running, 201 when finished) with a growing interval."""
    interval = pause = POLL_FIRST
    state = "pending"
    with progress_bar(len(job_ids) or None, f"workflow {wid}", progress, unit="job") as bar:
        bar.set_postfix_str(state)
        while True:
            now = time.monotonic()
            if now >= deadline:
                raise PollTimeout(wid, timeout, state)
            time.sleep(min(pause, deadline - now))
            resp = s.request("GET", link)
            body = resp.json()
            if resp.status_code != 202:
                bar.update(len(job_ids) - bar.n)
                bar.set_postfix_str(str(body.get("state", "finished")))
                return body
            state = str(body.get("state", state))
            if progress is not False and job_ids:
                done = _finished_jobs(s, pid, wid)
                if done > bar.n:
                    bar.update(done - bar.n)
            bar.set_postfix_str(state)
            interval = min(interval * POLL_GROWTH, POLL_MAX)
            pause = _retry_after(resp) or interval  # the server's Retry-After wins


def _retry_after(resp: requests.Response) -> float:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else 0.0
    except ValueError:
        return 0.0


def _finished_jobs(s: Any, pid: str, wid: str) -> int:
    jobs = s.get_json(f"/projects/{pid}/jobs")
    return sum(1 for j in jobs if str(j.get("workflow_id")) == wid and j.get("state") in FINISHED)


def _workflow_jobs(s: Any, pid: str, wid: str, order: list[str]) -> list[dict[str, Any]]:
    jobs = [j for j in s.get_json(f"/projects/{pid}/jobs") if str(j.get("workflow_id")) == wid]
    rank = {jid: i for i, jid in enumerate(order)}
    return sorted(jobs, key=lambda j: rank.get(str(j["id"]), len(rank)))


def _cancel(s: Any, pid: str, wid: str) -> str:
    try:
        s.request("POST", f"/projects/{pid}/workflows/{wid}/cancel")
    except APIError as exc:
        message = f"interrupted; workflow {wid} could not be cancelled ({exc.message})"
    else:
        message = f"interrupted; workflow {wid} was cancelled on the server"
    _LOGGER.warning(message)
    return message


def _warn_failed(workflow: Mapping[str, Any], jobs: list[dict[str, Any]]) -> None:
    state = workflow.get("state")
    failed = [j for j in jobs if j.get("state") == "failure"]
    details = "; ".join(f"job {j.get('name')!r} ({j.get('type')}): {j.get('error') or 'no error message'}" for j in failed)
    warnings.warn(
        f"workflow {workflow.get('id')} ended in {state}" + (f": {details}" if details else ""),
        WorkflowFailedWarning,
        stacklevel=3,
    )


def _definition_text(definition: str | Mapping[str, Any] | os.PathLike) -> str:
    if isinstance(definition, Mapping):
        import yaml

        return yaml.safe_dump(dict(definition), sort_keys=False)
    if isinstance(definition, os.PathLike):
        return Path(definition).read_text()
    if not isinstance(definition, str) or not definition.strip():
        raise MetafoldError("the workflow definition is empty", hint="give YAML with a top-level 'jobs:' mapping")
    return definition


def _asset_filenames(s: Any, pid: str, assets: Mapping[str, str]) -> dict[str, str]:
    """Map asset IDs to filenames (the API wants filenames); filenames pass through."""
    known = {str(a["id"]): a["filename"] for a in s.get_json(f"/projects/{pid}/assets")}
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
