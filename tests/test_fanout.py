"""Account-wide frames (``all_projects=True``) against the sandbox over loopback, and their manners:
one bounded pool over the session's connection pool, a shared slow-down on 429, one token
exchange, partial failures that are never silent, Ctrl-C that stops at once."""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings

import pandas as pd
import pytest
from helpers import login_to
from IPython.core.error import UsageError
from test_magics import dotenv, logged_in, shell  # noqa: F401 - fixtures
from test_operations import FAILING_WORKFLOW

import metafold_jupyter as mf
from metafold_jupyter import fanout
from metafold_jupyter.errors import APIError, ConfigError, PartialResultError
from metafold_jupyter.fanout import PartialResultWarning
from metafold_jupyter.frames import SCHEMAS
from metafold_jupyter.pacing import Throttle

KINDS = ("assets", "jobs", "workflows")


@pytest.fixture(scope="module")
def bulk_server():
    """A sandbox with the demo data and 40 generated (empty) projects: 50 in all."""
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(bulk_projects=40, workflow_duration=1.0) as sb:
        yield sb


@pytest.fixture
def bulk(bulk_server):
    bulk_server.reset()
    yield bulk_server
    bulk_server.reset()


def project_ids(s):
    return [str(p["id"]) for p in s.get_json("/projects")]


def sequential(kind, s, **kw):
    """What a user writes by hand today: one call per project, concatenated."""
    frames = [getattr(mf, kind)(project=pid, **kw) for pid in project_ids(s)]
    return pd.concat([f for f in frames if len(f)], ignore_index=True)


def list_calls(sb, kind):
    return [r for r in sb.requests
            if r.method == "GET" and r.path.startswith("/projects/") and r.path.endswith("/" + kind)]


def fanout_threads():
    return [t for t in threading.enumerate() if t.name.startswith("metafold-fanout")]


def spread_jobs(s, *projects):
    """Jobs and workflows in more projects than the seed's one (dispatched, not awaited)."""
    for pid in projects:
        mf.run_workflow(FAILING_WORKFLOW, project=pid, wait=False, progress=False)


# -- the frame ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_account_frame_same_schema_and_rows_as_single_project_calls(session, sandbox, kind):
    if kind != "assets":  # (finished runs add output assets: the assets would change under the test)
        spread_jobs(session, "1", "9")
    combined = getattr(mf, kind)(all_projects=True, progress=False)
    asked = sorted(r.path for r in list_calls(sandbox, kind))
    single = getattr(mf, kind)(project=session.project_id)
    assert list(combined.columns) == list(single.columns)
    assert combined.dtypes.to_dict() == single.dtypes.to_dict()
    by_hand = sequential(kind, session)
    assert sorted(combined["id"]) == sorted(by_hand["id"]) and combined["id"].is_unique
    assert combined["project_id"].nunique() >= 2  # rows from several projects, told apart by project_id
    # default order: newest ID first across the account, as the API lists one project
    ids = combined["id"].astype(int).tolist()
    assert ids == sorted(ids, reverse=True)
    # every project was asked exactly once
    assert asked == sorted(f"/projects/{pid}/{kind}" for pid in project_ids(session))


def test_account_frame_sorts_the_combined_frame_like_the_api(session, sandbox):
    created = mf.assets(all_projects=True, sort="created:-1", progress=False)
    assert created["project_id"].nunique() == 3
    assert created["created"].is_monotonic_decreasing
    names = mf.assets(all_projects=True, sort="filename:1", progress=False)
    keys = names["filename"].str.casefold().tolist()
    assert keys == sorted(keys)  # case-insensitive, as the API sorts text
    by_id = mf.assets(all_projects=True, sort="id:1", progress=False)
    assert by_id["id"].astype(int).tolist() == sorted(by_id["id"].astype(int))  # numeric, not "10" < "9"
    # the sort went to every project's call too (so a bad key is refused the API's way)
    assert all("sort=filename%3A1" in r.query or "sort=filename:1" in r.query
               for r in list_calls(sandbox, "assets")[len(project_ids(session)):2 * len(project_ids(session))])


def test_account_frame_sort_puts_missing_values_as_the_api_does(session, sandbox):
    spread_jobs(session, "1")  # pending jobs: started is missing
    asc = mf.jobs(all_projects=True, sort="started:1", progress=False)
    desc = mf.jobs(all_projects=True, sort="started:-1", progress=False)
    assert asc["started"].isna().any()
    assert asc["started"].isna().tolist() == sorted(asc["started"].isna())  # missing last ascending
    assert desc["started"].isna().tolist() == sorted(desc["started"].isna(), reverse=True)  # first descending
    assert asc["started"].dropna().is_monotonic_increasing and desc["started"].dropna().is_monotonic_decreasing


def test_account_frame_passes_q_to_every_project(session, sandbox):
    spread_jobs(session, "1", "9")
    failed = mf.jobs(all_projects=True, q="state:failure", progress=False)
    assert len(failed) and set(failed["state"]) == {"failure"}
    explode = mf.jobs(all_projects=True, q="name:explode", progress=False)
    assert set(explode["name"]) == {"explode"} and set(explode["project_id"]) == {"1", "9"}
    calls = list_calls(sandbox, "jobs")
    assert len(calls) == 2 * len(project_ids(session)) and all("q=" in r.query for r in calls)


def test_account_frame_bad_sort_is_the_apis_own_error(session, sandbox):
    with pytest.raises(APIError) as info:
        mf.jobs(all_projects=True, sort="colour:1", progress=False)
    assert info.value.status == 400 and "sort" in info.value.message.lower()
    assert not isinstance(info.value, PartialResultError)


def test_account_frame_project_and_all_projects_is_refused(session):
    with pytest.raises(ConfigError, match="all projects"):
        mf.jobs(project="3", all_projects=True)
    with pytest.raises(ValueError, match="on_error"):
        mf.jobs(all_projects=True, on_error="ignore")


def test_account_frame_empty_account_has_the_schema(sandbox):
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(seed=False) as empty:
        s = login_to(empty)
        for kind in KINDS:  # one empty project
            frame = getattr(mf, kind)(all_projects=True, progress=False)
            single = getattr(mf, kind)(project=empty.default_project_id)
            assert frame.empty and list(frame.columns) == list(single.columns)
            assert frame.dtypes.to_dict() == single.dtypes.to_dict()
        s.request("DELETE", f"/projects/{empty.default_project_id}")
        assert s.get_json("/projects") == []  # an account with no project at all
        for kind in KINDS:
            frame = getattr(mf, kind)(all_projects=True)
            schema = [name for name, _ in SCHEMAS[kind]]
            assert frame.empty and list(frame.columns) == schema
            assert str(frame["created"].dtype) == "datetime64[ns, UTC]" and str(frame["id"].dtype) == "string"


# -- partial failures ----------------------------------------------------------------------------


def test_account_frame_partial_failure_raises_with_frame_and_failures(session, sandbox):
    everything = mf.assets(all_projects=True, progress=False)
    sandbox.inject("/projects/4/assets", status=404, count=1)
    sandbox.inject("/projects/1/assets", status=500, count=5)  # every retry of the policy answered 500
    with pytest.raises(PartialResultError) as info:
        mf.assets(all_projects=True, progress=False)
    err = info.value
    assert isinstance(err, mf.MetafoldError)
    failures = err.failures
    assert list(failures.columns) == ["project_id", "status", "message"]
    assert failures.dtypes.astype(str).tolist() == ["string", "Int64", "string"]
    assert dict(zip(failures["project_id"], failures["status"])) == {"4": 404, "1": 500}
    assert failures["message"].str.len().gt(0).all()
    expected = everything[~everything["project_id"].isin(["1", "4"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(err.frame, expected)
    text = str(err)
    assert "\n" not in text and "2 of 10 projects" in text and "project 4 (HTTP 404" in text
    assert err.hint and ".failures" in err.hint
    # the failed project really was asked again by the retry policy, then given up on
    assert [r.status for r in sandbox.requests if r.path == "/projects/1/assets"] == [200, 500, 500, 500, 500, 500]


def test_account_frame_partial_failure_warns_in_warn_mode(session, sandbox):
    everything = mf.assets(all_projects=True, progress=False)
    sandbox.inject("/projects/3/assets", status=404, count=1)
    with pytest.warns(PartialResultWarning, match=r"1 of 10 projects.*project 3 \(HTTP 404") as caught:
        frame = mf.assets(all_projects=True, on_error="warn", progress=False)
    assert caught[0].filename == __file__  # points at the user's line
    pd.testing.assert_frame_equal(frame, everything[everything["project_id"] != "3"].reset_index(drop=True))


def test_partial_result_error_is_exported_and_picklable(session, sandbox):
    import pickle

    sandbox.inject("/projects/4/assets", status=404)
    with pytest.raises(mf.PartialResultError) as info:
        mf.assets(all_projects=True, progress=False)
    copy = pickle.loads(pickle.dumps(info.value))
    assert str(copy) == str(info.value) and copy.failures.equals(info.value.failures)
    assert "PartialResultError" in mf.__all__


# -- manners ---------------------------------------------------------------------------------------


def test_account_frame_429_storm_slows_the_whole_fanout(bulk):
    """Three projects answer 429 (Retry-After 2 s) twice each: every project still arrives,
    nobody sends anything while the server asked for quiet, and fewer requests are in flight."""
    s = login_to(bulk)
    expected = sequential("jobs", s)
    ids = project_ids(s)
    bulk.reset()
    s = login_to(bulk)
    latency, slow, retry_after = 0.2, 0.5, 2
    bulk.latency = latency
    storm = ids[:3]  # the first ones asked
    for pid in storm:  # answered late, so that the fan-out is at full speed before the storm, even under load
        bulk.inject(f"/projects/{pid}/jobs", status=429, count=2, retry_after=retry_after, delay=slow)
    throttle = Throttle(s.concurrency)
    frame = fanout.account_frame("jobs", progress=False, throttle=throttle)

    # every project arrived, nothing failed
    pd.testing.assert_frame_equal(frame.sort_values("id").reset_index(drop=True),
                                  expected.sort_values("id").reset_index(drop=True))
    calls = list_calls(bulk, "jobs")
    answered = {}
    for r in calls:
        answered.setdefault(r.path, []).append(r.status)
    assert len(answered) == len(ids)
    assert all(answered[f"/projects/{pid}/jobs"] == [429, 429, 200] for pid in storm)
    assert throttle.slowdowns == 6

    # in flight: 6 before the storm, halved at the first 429 and again when the retries were refused
    samples = list(throttle.samples)
    before = samples[:next(i for i, (_, _, limit) in enumerate(samples) if limit < 6)]
    assert max(n for _, n, _ in before) == 6
    assert throttle.cuts == 2 and min(limit for _, _, limit in samples) <= 2  # 6 -> 3 -> 1, then +1 a round
    assert throttle.peak_in_flight == 6

    # the server saw quiet while it asked for it: no request arrived during the Retry-After
    answer = min(r.time for r in calls if r.status == 429) + latency + slow
    assert [r.path for r in bulk.requests if answer + 0.4 < r.time < answer + retry_after - 0.1] == []
    # after the storm: the three refused requests again, and nothing else in that latency window
    # (each slot sends at most one request per window, as every answer takes the latency)
    answer = max(r.time for r in calls if r.status == 429) + latency + slow
    after = sorted(r.time for r in calls if r.time > answer + retry_after - 0.1)
    first_window = [t for t in after if t < after[0] + latency * 0.9]
    assert len(first_window) <= 3


def test_account_frame_one_token_exchange_when_the_token_expires_mid_fanout():
    """Tokens live 4 s (refreshed after 3.6 s, a margin longer than the latency, so that no
    request is sent with a token that expires before it arrives); the fan-out of 121 projects
    takes ~4.2 s with 6 workers."""
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(bulk_projects=110, token_lifetime=4) as sb:
        s = login_to(sb)
        assert sb.token_exchanges == 1
        sb.latency = 0.2
        frame = mf.jobs(all_projects=True, progress=False)
        assert len(frame) == 8
        calls = list_calls(sb, "jobs")
        tokens = {r.authorization for r in calls}
        assert len(tokens) == 2, "the token should have expired mid fan-out"
        assert sb.token_exchanges == 2 and s.token_exchanges == 2  # one exchange for the whole fan-out
        assert [(r.path, r.status) for r in sb.requests if r.status != 200] == []  # no 401 replays


def test_account_frame_no_connection_pool_warnings(bulk, caplog):
    s = login_to(bulk)
    s.concurrency = 16
    bulk.latency = 0.05
    caplog.set_level(logging.WARNING, logger="urllib3")
    throttle = Throttle(s.concurrency)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fanout.account_frame("assets", progress=False, throttle=throttle)
    assert throttle.peak_in_flight == 16  # really 16 at once over the one requests.Session
    assert not [r for r in caplog.records if "pool" in r.getMessage().lower()]
    assert not caught


def test_account_frame_stays_inside_a_small_connection_pool(bulk, caplog):
    """The capture does see pool warnings (raw threads on a 2-connection pool), and the fan-out,
    given the same pool, runs only 2 requests at a time instead."""
    from requests.adapters import HTTPAdapter

    from metafold_jupyter.pacing import paced
    from metafold_jupyter.transport import API_RETRY

    s = login_to(bulk)
    s.http.mount(bulk.url, HTTPAdapter(max_retries=paced(API_RETRY), pool_maxsize=2))
    bulk.latency = 0.05
    caplog.set_level(logging.WARNING, logger="urllib3")
    threads = [threading.Thread(target=s.get_json, args=("/user/usage",)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any("Connection pool is full" in r.getMessage() for r in caplog.records)  # the control
    caplog.clear()
    throttle = Throttle(2)
    fanout.account_frame("assets", progress=False, throttle=throttle)
    assert throttle.peak_in_flight <= 2
    assert not [r for r in caplog.records if "pool" in r.getMessage().lower()]


def test_account_frame_ctrl_c_stops_promptly(bulk):
    s = login_to(bulk)
    bulk.latency = 0.3  # 51 projects, 6 at a time: ~2.7 s if left alone
    main = threading.main_thread().ident
    timer = threading.Timer(0.8, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            mf.jobs(all_projects=True, progress=False)
        at_interrupt = len(list_calls(bulk, "jobs"))
    finally:
        timer.cancel()
    deadline = time.monotonic() + 10
    while fanout_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fanout_threads() == []  # no hung worker
    total = len(list_calls(bulk, "jobs"))
    assert total < len(project_ids(s))  # it stopped...
    assert total <= at_interrupt + s.concurrency  # ...and started nothing new after Ctrl-C
    assert s.get_json("/user/usage")  # the session is still usable


def test_account_frame_ctrl_c_wakes_workers_waiting_out_a_429(bulk):
    """Workers paused by a long Retry-After wake at once on Ctrl-C instead of sleeping it out."""
    s = login_to(bulk)
    for pid in project_ids(s)[:6]:
        bulk.inject(f"/projects/{pid}/jobs", status=429, count=1, retry_after=30)
    main = threading.main_thread().ident
    timer = threading.Timer(0.8, signal.pthread_kill, (main, signal.SIGINT))
    timer.start()
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            mf.jobs(all_projects=True, progress=False)
    finally:
        timer.cancel()
    deadline = time.monotonic() + 10
    while fanout_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fanout_threads() == []
    assert time.monotonic() - started < 30  # did not sleep out the Retry-After


def test_account_frame_shows_one_progress_display(session, sandbox, capsys):
    mf.jobs(all_projects=True)
    err = capsys.readouterr().err
    assert "jobs of every project" in err and "10/10" in err and err.count("10/10") >= 1
    mf.jobs(all_projects=True, progress=False)
    assert capsys.readouterr().err == ""


# -- magics ----------------------------------------------------------------------------------------


def test_magic_all_projects_returns_the_account_frame(logged_in, sandbox, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    frame = shell.run_line_magic("metafold", "assets --all-projects --sort created:-1 -o everything")
    assert capsys.readouterr().err == ""  # progress off through the magics' config
    pd.testing.assert_frame_equal(frame, mf.assets(all_projects=True, sort="created:-1", progress=False))
    assert shell.user_ns["everything"] is frame
    shell.run_line_magic("config", "MetafoldMagics.progress = True")
    shell.run_line_magic("metafold", "workflows --all-projects")
    assert "workflows of every project" in capsys.readouterr().err


def test_magic_all_projects_shows_rows_and_warns_on_partial_failure(logged_in, sandbox, capsys):
    shell = logged_in
    shell.run_line_magic("config", "MetafoldMagics.progress = False")
    sandbox.inject("/projects/4/assets", status=404)
    frame = shell.run_line_magic("metafold", "assets --all-projects")
    err = capsys.readouterr().err
    assert err.startswith("⚠ assets of 1 of 10 projects") and "project 4 (HTTP 404" in err
    assert len(frame) and "4" not in set(frame["project_id"])


def test_magic_all_projects_refuses_what_it_cannot_do(logged_in):
    shell = logged_in
    with pytest.raises(UsageError, match="--all-projects applies to assets, jobs, workflows"):
        shell.run_line_magic("metafold", "projects --all-projects")
    with pytest.raises(UsageError, match="all projects"):
        shell.run_line_magic("metafold", "jobs --project 3 --all-projects")


def test_magic_all_projects_is_completed(shell):
    from test_magics import complete

    assert "--all-projects" in complete(shell, "%metafold jobs --all")
    assert "--all-projects" not in complete(shell, "%metafold projects --")
