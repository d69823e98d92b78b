"""Parameter studies (``mf.grid``, ``mf.run_workflows``, ``%%metafold sweep``) against the sandbox
over loopback: the frame, failures that do not stop a study, a dispatch limit answering 429,
polls bounded per run, and Ctrl-C that cancels every unfinished workflow once."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from helpers import login_to
from IPython.core.error import UsageError
from test_magics import complete, dotenv, logged_in, shell  # noqa: F401 - fixtures

import metafold_jupyter as mf
from metafold_jupyter import studies
from metafold_jupyter.errors import APIError, InvalidValueError
from metafold_jupyter.frames import DATETIME, TIMEDELTA
from metafold_jupyter.operations import WorkflowFailedWarning, parameter_text

#: A lattice study: sample a gyroid, measure it, and remesh it (resolution 16 keeps it cheap).
STUDY = """\
jobs:
  sample:
    type: implicit/evaluate
    parameters:
      resolution: 16
  metrics:
    type: implicit/metrics
    needs: [sample]
    assets: {volume: sample}
  mesh:
    type: mesh/from-volume
    needs: [sample]
    assets: {volume: sample}
"""
#: Only the sampling and the metrics: no mesh asset, no export counted.
METRICS = """\
jobs:
  sample:
    type: implicit/evaluate
    parameters:
      resolution: 12
  metrics:
    type: implicit/metrics
    needs: [sample]
    assets: {volume: sample}
"""
RUN_DTYPES = {"workflow_id": "string", "state": "string", "created": DATETIME, "started": DATETIME,
              "finished": DATETIME, "duration": TIMEDELTA, "error": "string"}


# -- helpers -------------------------------------------------------------------------------------


@dataclass
class Exchange:
    """One request as the client's connection adapter sent it."""

    method: str
    path: str
    sent: float  # time.monotonic() when handed to the adapter
    answered: float  # ... when the adapter returned
    status: int | None
    retry_after: str | None


class WireLog:
    """Every request a session sends, timed at the adapter (instrumentation, not a mock).

    Used to check that a 429's Retry-After is honoured: no request starts during the pause.
    """

    def __init__(self, s) -> None:
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._adapter = s.http.get_adapter(s.base_url)
        self._send = self._adapter.send
        self._adapter.send = self._record

    def _record(self, request, **kwargs):
        from urllib.parse import urlsplit

        sent = time.monotonic()
        resp = self._send(request, **kwargs)
        with self._lock:
            self.exchanges.append(Exchange(request.method, urlsplit(request.url).path, sent, time.monotonic(),
                                           resp.status_code, resp.headers.get("Retry-After")))
        return resp

    def close(self) -> None:
        self._adapter.send = self._send

    def dispatches(self, status: int | None = None) -> list[Exchange]:
        return [e for e in self.exchanges if e.method == "POST" and e.path.endswith("/workflows")
                and (status is None or e.status == status)]

    def violations(self, grace: float = 0.25) -> list[tuple[Exchange, Exchange]]:
        """(429, request) pairs where the request started inside the 429's Retry-After.

        ``grace``: a request that took its slot in the moment between the 429 arriving and the
        pause being set is not a violation.
        """
        found = []
        for refusal in self.dispatches(429):
            pause = float(refusal.retry_after or 1)
            for e in self.exchanges:
                if refusal.answered + grace < e.sent < refusal.answered + pause:
                    found.append((refusal, e))
        return found


def workflow_ids(s) -> set[str]:
    return {str(w["id"]) for w in s.get_json(f"/projects/{s.project_id}/workflows")}


def status_polls(sb) -> int:
    return len([r for r in sb.requests if r.method == "GET" and r.path.endswith("/status")])


@pytest.fixture
def limited(sandbox):
    """The sandbox refusing a dispatch (429 + Retry-After) past 2 workflows in flight."""
    sandbox.max_running_workflows = 2
    yield sandbox
    sandbox.max_running_workflows = None  # reset() keeps it


def study_threads():
    return [t for t in threading.enumerate() if t.name.startswith("metafold-fanout")]


# -- grid ----------------------------------------------------------------------------------------


def test_grid_is_the_cartesian_product_of_a_mapping():
    df = mf.grid({"sample.thickness": [0.5, 1.0, 1.5], "sample.resolution": [16, 32],
                  "sample.shape": ["gyroid", "diamond"]})
    assert list(df.columns) == ["sample.thickness", "sample.resolution", "sample.shape"]
    assert len(df) == 12 and list(df.index) == list(range(12))
    assert df.iloc[:4].to_dict("records") == [  # the last parameter varies fastest
        {"sample.thickness": 0.5, "sample.resolution": 16, "sample.shape": "gyroid"},
        {"sample.thickness": 0.5, "sample.resolution": 16, "sample.shape": "diamond"},
        {"sample.thickness": 0.5, "sample.resolution": 32, "sample.shape": "gyroid"},
        {"sample.thickness": 0.5, "sample.resolution": 32, "sample.shape": "diamond"},
    ]
    assert dict(df.dtypes.astype(str)) == {"sample.thickness": "float64", "sample.resolution": "int64",
                                           "sample.shape": "string"}
    assert len(df.drop_duplicates()) == 12


def test_grid_from_keyword_arguments_and_single_values():
    df = mf.grid({"sample.size": 20}, sample__thickness=np.linspace(0.5, 2, 4), metrics__level="0")
    assert list(df.columns) == ["sample.size", "sample.thickness", "metrics.level"]
    assert len(df) == 4 and set(df["sample.size"]) == {20} and set(df["metrics.level"]) == {"0"}
    assert list(df["sample.thickness"]) == [0.5, 1.0, 1.5, 2.0]
    lists = mf.grid({"sample.size": [[10, 10, 10], [20, 20, 20]]})  # a list value stays one value
    assert len(lists) == 2 and lists["sample.size"].iloc[1] == [20, 20, 20]


def test_grid_edge_cases():
    assert mf.grid().shape == (1, 0)  # the product of nothing: one run, no parameter
    empty = mf.grid({"sample.thickness": [], "sample.resolution": [16, 32]})
    assert len(empty) == 0 and list(empty.columns) == ["sample.thickness", "sample.resolution"]
    with pytest.raises(InvalidValueError, match="'sample.thickness' is given twice"):
        mf.grid({"sample.thickness": [1]}, sample__thickness=[2])
    with pytest.raises(InvalidValueError, match="mapping"):
        mf.grid([("sample.thickness", [1])])


def test_parameter_text_is_what_the_api_takes():
    assert parameter_text("gyroid") == "gyroid"
    assert parameter_text(np.float64(0.5)) == "0.5" and parameter_text(np.int64(32)) == "32"
    assert parameter_text(True) == "true" and parameter_text([16, 16, 16]) == "[16, 16, 16]"
    assert parameter_text(np.array([8, 8])) == "[8, 8]" and parameter_text(1.0) == "1.0"


def test_study_names_are_exported_lazily():
    code = ("import sys, metafold_jupyter as mf; assert 'metafold_jupyter.studies' not in sys.modules; "
            "assert 'pandas' not in sys.modules; f = mf.run_workflows; assert callable(mf.grid); "
            "assert 'grid' in mf.__all__ and 'run_workflows' in mf.__all__ and 'grid' in dir(mf)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- run_workflows: the frame --------------------------------------------------------------------


def test_run_workflows_list_of_dicts_keeps_the_order_of_runs(session, sandbox):
    # the first run takes longest, so the runs finish in reverse order
    runs = [{"sample.thickness": t, "sandbox.duration": d} for t, d in ((0.5, 3), (1.0, 2), (1.5, 1))]
    df = mf.run_workflows(METRICS, runs, concurrency=3, progress=False)
    assert list(df["run"]) == [0, 1, 2]
    assert list(df.columns[:5]) == ["run", "sample.thickness", "sandbox.duration", "workflow_id", "state"]
    assert list(df["sample.thickness"]) == [0.5, 1.0, 1.5] and set(df["state"]) == {"success"}
    assert df["finished"].is_monotonic_decreasing  # finished in reverse, listed in order
    jobs = mf.jobs(q="name:sample")
    for row in df.to_dict("records"):  # each row is its own workflow, with its own parameters
        (inputs,) = jobs.loc[jobs["workflow_id"] == row["workflow_id"], "inputs"]
        assert inputs["params"]["thickness"] == parameter_text(row["sample.thickness"])
    assert df["metrics.volume"].is_monotonic_increasing  # thicker walls, more volume


def test_run_workflows_frame_is_typed_with_output_columns(session, sandbox):
    runs = mf.grid({"sample.thickness": [0.5, 1.5], "sample.resolution": [12, 16]})
    df = mf.run_workflows(STUDY, runs, progress=False)
    lead = ["run", "sample.thickness", "sample.resolution", *studies.RUN_COLUMNS]
    assert list(df.columns[:len(lead)]) == lead
    assert {c: str(df[c].dtype) for c in studies.RUN_COLUMNS} == RUN_DTYPES
    assert str(df["run"].dtype) == "int64" and str(df["sample.thickness"].dtype) == "float64"
    assert set(df["state"]) == {"success"} and df["error"].isna().all()
    assert (df["duration"] == df["finished"] - df["started"]).all()
    # output params: numeric when every value is a number, boolean for true/false, text otherwise
    for column in ("metrics.volume", "metrics.area", "metrics.relative_density", "mesh.volume"):
        assert str(df[column].dtype) == "float64", column
    assert str(df["mesh.triangles"].dtype) == "int64" and str(df["mesh.watertight"].dtype) == "boolean"
    assert str(df["sample.shape"].dtype) == "string" and set(df["sample.shape"]) == {"gyroid"}
    # output assets: their IDs, which name the assets each run's jobs made
    assert str(df["mesh.mesh"].dtype) == "string" and str(df["sample.volume"].dtype) == "string"
    assets = mf.assets().set_index("id")
    assert all(assets.loc[aid, "filename"].endswith(".stl") for aid in df["mesh.mesh"])
    assert all(assets.loc[aid, "filename"].endswith(".bin") for aid in df["sample.volume"])
    jobs = mf.jobs().set_index("id")
    mesh_jobs = assets.loc[list(df["mesh.mesh"]), "job_id"]
    assert list(jobs.loc[list(mesh_jobs), "workflow_id"]) == list(df["workflow_id"])
    # a real trend, plottable at once
    at16 = df[df["sample.resolution"] == 16]
    assert at16["metrics.volume"].iloc[1] > at16["metrics.volume"].iloc[0]
    assert (df["metrics.volume"] - df["mesh.volume"]).abs().max() < 1e-6
    import matplotlib

    matplotlib.use("Agg")
    ax = df.plot(x="sample.thickness", y="metrics.volume", kind="scatter")
    assert len(ax.collections[0].get_offsets()) == 4


def test_run_workflows_failed_runs_do_not_stop_the_study(session, sandbox):
    runs = [{"sample.thickness": 1.0}, {"sample.thickness": "thick"}, {"sample.thickness": 0.5},
            {"nosuchjob.size": 3}]  # a bad value fails its job; an unknown job is refused at dispatch
    with pytest.warns(WorkflowFailedWarning, match=r"2 of 4 runs failed: run 1 \(workflow \d+\): implicit/eval"):
        df = mf.run_workflows(METRICS, runs, progress=False)
    assert list(df["state"].fillna("-")) == ["success", "failure", "success", "-"]
    assert df["error"].iloc[0] is pd.NA and df["error"].iloc[2] is pd.NA
    assert df["error"].iloc[1] == ("implicit/evaluate: parameter 'thickness' must be a number in (0, 10000] mm, "
                                   "not 'thick'")
    assert "HTTP 400" in df["error"].iloc[3] and "nosuchjob" in df["error"].iloc[3]
    assert df["workflow_id"].iloc[3] is pd.NA and df["created"].isna().iloc[3]
    assert df["metrics.volume"].isna().tolist() == [False, True, False, True]
    assert str(df["metrics.volume"].dtype) == "float64"  # still numeric with the gaps
    assert list(df.columns[1:3]) == ["sample.thickness", "nosuchjob.size"]


def test_run_workflows_every_dispatch_refused_raises_the_apis_error(session, sandbox):
    before = workflow_ids(session)
    with pytest.raises(APIError) as info:
        mf.run_workflows("jobs: [unclosed", mf.grid({"sample.thickness": [1, 2, 3]}), progress=False)
    assert info.value.status == 400 and "Invalid YAML" in info.value.message
    assert workflow_ids(session) == before


def test_run_workflows_empty_runs_give_the_schema(session, sandbox):
    before = len(sandbox.requests)
    for runs, params in (([], []), (mf.grid({"sample.thickness": [], "sample.resolution": [16]}),
                                    ["sample.thickness", "sample.resolution"])):
        df = mf.run_workflows(STUDY, runs, progress=False)
        assert len(df) == 0 and list(df.columns) == ["run", *params, *studies.RUN_COLUMNS]
        assert {c: str(df[c].dtype) for c in studies.RUN_COLUMNS} == RUN_DTYPES
    assert len(sandbox.requests) == before  # nothing to run, nothing sent


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"runs": {"sample.thickness": [1, 2]}}, "not dict"),
    ({"runs": [{"thickness": 1}]}, "'thickness' does not name its job"),
    ({"runs": [1, 2]}, "run 0 is a int"),
    ({"runs": [{}], "concurrency": 0}, "concurrency must be a whole number from 1 to 16"),
    ({"runs": [{}], "concurrency": 17}, "from 1 to 16"),
    ({"runs": [{}], "timeout": 0}, "timeout must be a positive number"),
])
def test_run_workflows_refuses_bad_input_before_sending(session, sandbox, kwargs, message):
    before = len(sandbox.requests)
    with pytest.raises(InvalidValueError, match=message):
        mf.run_workflows(STUDY, **{"progress": False, **kwargs})
    assert len(sandbox.requests) == before


def test_run_workflows_shows_one_progress_display(session, sandbox, capsys):
    runs = [{"sample.thickness": 1.0}, {"sample.thickness": "thick"}, {"sample.thickness": 0.5}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WorkflowFailedWarning)
        mf.run_workflows(METRICS, runs, concurrency=3)
    err = capsys.readouterr().err
    assert "parameter study" in err and "3/3" in err and "1 failed" in err
    assert "workflow " not in err  # no per-workflow bar
    mf.run_workflows(METRICS, runs[:1], progress=False)
    assert capsys.readouterr().err == ""


# -- manners: polls, in-flight bound, 429 ------------------------------------------------------------


def test_run_workflows_polls_at_most_runs_times_one_run_and_never_lists_jobs(session, sandbox):
    mf.run_workflows(METRICS, [{"sample.thickness": 1.0}], progress=False)
    one = status_polls(sandbox)
    sandbox.reset()
    runs = mf.grid({"sample.thickness": [0.5, 1.0, 1.5], "sample.resolution": [12, 16]})
    df = mf.run_workflows(METRICS, runs, concurrency=3, progress=False)
    assert set(df["state"]) == {"success"}
    assert 0 < status_polls(sandbox) <= len(runs) * one
    lists = [r for r in sandbox.requests if r.method == "GET" and r.path.endswith("/jobs")]
    assert lists == []  # each finished run fetches its own jobs, once each
    job_gets = [r for r in sandbox.requests if r.method == "GET" and "/jobs/" in r.path]
    assert len(job_gets) == 2 * len(runs)


def test_run_workflows_keeps_at_most_concurrency_workflows_in_flight(session, sandbox):
    """With the sandbox's limit equal to the study's concurrency, no dispatch is ever refused."""
    sandbox.max_running_workflows = 2
    try:
        df = mf.run_workflows(METRICS, mf.grid({"sample.thickness": [0.5, 1.0, 1.5, 2.0, 2.5]}), concurrency=2,
                              progress=False)
    finally:
        sandbox.max_running_workflows = None
    assert set(df["state"]) == {"success"}
    dispatches = [r for r in sandbox.requests if r.method == "POST" and r.path.endswith("/workflows")]
    assert [r.status for r in dispatches] == [202] * 5


def test_run_workflows_429_storm_every_run_completes_once(limited):
    s = login_to(limited, project=limited.default_project_id)
    wire = WireLog(s)
    before = workflow_ids(s)
    try:
        runs = mf.grid({"sample.thickness": [0.5, 1.0, 1.5], "sample.resolution": [12, 16]})
        df = mf.run_workflows(METRICS, runs, concurrency=4, progress=False)
    finally:
        wire.close()
    assert set(df["state"]) == {"success"} and df["error"].isna().all()
    created = workflow_ids(s) - before
    assert created == set(df["workflow_id"]) and len(created) == len(runs)  # no dispatch ran twice
    refused = wire.dispatches(429)
    assert refused, "the limit of 2 never refused a dispatch of 4 in flight"
    assert len(wire.dispatches(202)) == len(runs)
    assert wire.violations() == []  # every Retry-After was waited out by every run
    server_side = [r for r in limited.requests if r.method == "POST" and r.path.endswith("/workflows")]
    assert len([r for r in server_side if r.status == 202]) == len(runs)


def test_run_workflows_gives_up_dispatching_at_the_timeout(limited):
    s = login_to(limited, project=limited.default_project_id)
    runs = [{"sandbox.duration": 30}] * 3
    with pytest.warns(WorkflowFailedWarning):
        df = mf.run_workflows(METRICS, runs, concurrency=3, timeout=2.5, progress=False)
    # three dispatches race for two places: which run is refused is up to the race
    sent = df["workflow_id"].notna()
    assert sent.sum() == 2
    assert all("did not finish within 2.5 s" in e for e in df.loc[sent, "error"])
    (refused,) = df.loc[~sent, "error"]
    assert "HTTP 429" in refused and "not dispatched" in refused
    assert len(workflow_ids(s)) >= 2


# -- Ctrl-C ---------------------------------------------------------------------------------------


def interrupt_when(condition, then: float = 0.0, timeout: float = 60.0) -> threading.Event:
    """Ctrl-C (a real SIGINT to the main thread) once ``condition()`` holds, ``then`` seconds later.

    Waiting for a state rather than a fixed time keeps these tests right on a loaded machine,
    where the dispatches themselves may take a while. Set the returned event to call it off.
    """
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + timeout
        while not stop.is_set() and time.monotonic() < deadline:
            if condition():
                if not stop.wait(then):
                    signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return
            stop.wait(0.05)

    threading.Thread(target=watch, daemon=True, name="interrupt-when").start()
    return stop


def dispatched(sandbox, at_least: int):
    """A condition: at least ``at_least`` more workflows exist on the sandbox than now."""
    before = len(sandbox.store.workflows)
    return lambda: len(sandbox.store.workflows) - before >= at_least


def test_run_workflows_ctrl_c_cancels_unfinished_workflows_and_keeps_finished_rows(session, sandbox):
    # run 0 finishes quickly; runs 1-3 would take 30 s; with 3 in flight, runs 4-5 never start
    runs = [{"sample.thickness": 1.0, "sandbox.duration": 1}] + [
        {"sample.thickness": 0.5 + i / 10, "sandbox.duration": 30} for i in range(5)]
    before = workflow_ids(session)
    # runs 0-3 dispatched; run 0 (1 s) is seen finished about 1.3 s after its dispatch
    timer = interrupt_when(dispatched(sandbox, 4), then=3.0)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt) as info:
            mf.run_workflows(METRICS, runs, concurrency=3, progress=False)
    finally:
        timer.set()
    assert time.monotonic() - started < 15  # it did not wait for the 30 s workflows
    exc = info.value
    assert isinstance(exc, studies.StudyInterrupted)
    df = exc.frame
    assert list(df["run"]) == list(range(6)) and list(df.columns[1:3]) == ["sample.thickness", "sandbox.duration"]
    assert df["state"].iloc[0] == "success" and df["metrics.volume"].iloc[0] > 0  # finished row kept whole
    assert list(df["state"].iloc[1:4]) == ["canceled"] * 3
    assert df["state"].iloc[4:].isna().all() and df["workflow_id"].iloc[4:].isna().all()
    assert all("not run" in e for e in df["error"].iloc[4:])
    cancelled = list(df["workflow_id"].iloc[1:4])
    assert exc.cancelled == cancelled
    assert f"cancelled 3 workflows on the server ({', '.join(cancelled)})" in str(exc)
    assert "1 of 6 runs had finished" in str(exc) and "2 never started" in str(exc) and ".frame" in str(exc)
    # the server agrees: those three are canceled, nothing of the study is left running
    server = {str(w["id"]): w["state"] for w in session.get_json(f"/projects/{session.project_id}/workflows")}
    study = set(server) - before
    assert study == {df["workflow_id"].iloc[0], *cancelled}
    assert {server[w] for w in cancelled} == {"canceled"}
    cancels = [r for r in sandbox.requests if r.method == "POST" and r.path.endswith("/cancel")]
    assert sorted(r.path.split("/")[-2] for r in cancels) == sorted(cancelled)  # each sent once
    deadline = time.monotonic() + 10
    while study_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert study_threads() == []  # no worker left behind
    assert session.get_json("/user/usage")  # the session is still usable


# -- %%metafold sweep ------------------------------------------------------------------------------


def test_sweep_magic_runs_every_combination(logged_in, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    df = shell.run_cell_magic(
        "metafold", "sweep --param sample.thickness=0.5,1.5 --param sample.resolution=12,16 "
        "--concurrency 2 -o swept", METRICS)
    assert shell.user_ns["swept"] is df
    assert len(df) == 4 and set(df["state"]) == {"success"}
    assert list(df["sample.thickness"]) == [0.5, 0.5, 1.5, 1.5]
    assert str(df["sample.thickness"].dtype) == "float64" and str(df["sample.resolution"].dtype) == "int64"
    assert str(df["metrics.volume"].dtype) == "float64"
    assert capsys.readouterr().err == ""


def test_sweep_magic_values_text_lists_and_failures(logged_in, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    df = shell.run_cell_magic(
        "metafold", "sweep --param sample.size=[10,10,10],[20,20,20] --param sample.thickness=1,thick", METRICS)
    assert list(df["sample.size"]) == ["[10,10,10]", "[10,10,10]", "[20,20,20]", "[20,20,20]"]
    assert list(df["state"]) == ["success", "failure"] * 2
    (warning,) = capsys.readouterr().err.strip().splitlines()
    assert warning.startswith("⚠ 2 of 4 runs failed: run 1") and "not 'thick'" in warning
    volumes = df.dropna(subset=["metrics.volume"])["metrics.volume"]
    assert volumes.iloc[1] > 2 * volumes.iloc[0]  # a bigger box holds more lattice


@pytest.mark.parametrize(("line", "cell", "message"), [
    ("sweep", METRICS, "sweep needs --param"),
    ("sweep --param sample.thickness", METRICS, "expected --param KEY=V1,V2"),
    ("sweep --param sample.thickness=1,,2", METRICS, "empty value"),
    ("sweep --param a.b=1 --param a.b=2", METRICS, "given twice"),
    ("sweep --param thickness=1,2", METRICS, "does not name its job"),
    ("sweep --param sample.thickness=1 --concurrency 0", METRICS, "from 1 to 16"),
    ("run --concurrency 2", METRICS, "--concurrency applies to %%metafold sweep only"),
    ("sweep --param sample.thickness=1 -o 1x", METRICS, "-o needs a variable name"),
    ("sweep --param sample.thickness=1 extra", METRICS, "usage: %metafold sweep"),
])
def test_sweep_magic_refuses_bad_lines_in_one_line(logged_in, sandbox, line, cell, message):
    before = len(sandbox.requests)
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        logged_in.run_cell_magic("metafold", line, cell)
    assert not [r for r in sandbox.requests[before:] if r.method == "POST"]


def test_sweep_magic_needs_a_cell(logged_in):
    with pytest.raises(UsageError, match="start the cell with %%metafold sweep"):
        logged_in.run_line_magic("metafold", "sweep --param sample.thickness=1,2")
    with pytest.raises(UsageError, match="--param and --asset apply to %%metafold run and sweep only"):
        logged_in.run_line_magic("metafold", "jobs --param a.b=1")


def test_sweep_magic_ctrl_c_names_the_cancelled_workflows(logged_in, sandbox, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    timer = interrupt_when(dispatched(sandbox, 2), then=0.3)
    try:
        with pytest.raises(UsageError) as info:
            shell.run_cell_magic("metafold", "sweep --param sample.thickness=0.5,1,1.5 "
                                 "--param sandbox.duration=30 --concurrency 2 -o partial", METRICS)
    finally:
        timer.set()
    message = str(info.value)
    assert len(message.splitlines()) == 1
    cancelled = {str(w["id"]) for w in mf.workflows(q="state:canceled").to_dict("records")}
    in_run_order = [str(w) for w in info.value.frame["workflow_id"].dropna()]  # dispatches may race
    assert len(cancelled) == 2 and set(in_run_order) == cancelled
    assert f"cancelled 2 workflows on the server ({', '.join(in_run_order)})" in message
    assert "1 never started" in message and "every run's row is in partial" in message
    assert shell.user_ns["partial"] is info.value.frame
    assert list(info.value.frame["state"].fillna("-")) == ["canceled", "canceled", "-"]


def test_sweep_magic_ctrl_c_through_run_cell_keeps_the_rows(logged_in, sandbox, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    timer = interrupt_when(dispatched(sandbox, 2), then=0.3)
    try:
        result = shell.run_cell("%%metafold sweep --param sandbox.duration=30,30\n" + METRICS)
    finally:
        timer.set()
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert len(lines) == 1 and "cancelled 2 workflows on the server" in lines[0] and "Traceback" not in lines[0]
    assert "sys.last_value.frame" in lines[0]
    assert sys.last_value is result.error_in_exec and len(sys.last_value.frame) == 2


def test_sweep_is_completed(shell):
    assert "sweep" in complete(shell, "%%metafold sw")
    assert "--concurrency" in complete(shell, "%%metafold sweep --param a.b=1 --con")
    assert "--concurrency" not in complete(shell, "%%metafold run --con")
