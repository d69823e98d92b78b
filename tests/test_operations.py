"""Asset transfers and workflow runs against the sandbox."""

from __future__ import annotations

import _thread
import hashlib
import threading
import time
import warnings

import pandas as pd
import pytest
from test_frames import expected_dtypes, leading

import metafold_jupyter as mf
from metafold_jupyter.errors import APIError, IntegrityError, MetafoldError, PollTimeout, TransportError
from metafold_jupyter.operations import WorkflowFailedWarning

# Every transfer and workflow test runs against the live and the reference-shaped sandbox.
pytestmark = pytest.mark.answer_shapes("live", "reference")

OK_WORKFLOW = """\
jobs:
  preprocess:
    type: mesh/preprocess
    assets:
      mesh: cube.stl
  sample:
    type: implicit/from-mesh
    needs: [preprocess]
  remesh:
    type: mesh/from-volume
    needs: [sample]
"""

FAILING_WORKFLOW = """\
jobs:
  prepare:
    type: mesh/preprocess
  explode:
    type: sandbox/fail
    needs: [prepare]
"""


def asset_by_name(session, name):
    (asset,) = [a for a in session.get_json(f"/projects/{session.project_id}/assets") if a["filename"] == name]
    return asset


def part_files(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".part")]


# -- download -----------------------------------------------------------------------


def test_download_streams_checks_and_names_the_file(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    path = mf.download_asset(asset["id"], progress=False)
    assert path == tmp_path / "cube.stl"
    data = path.read_bytes()
    assert len(data) == asset["size"]
    assert "sha256:" + hashlib.sha256(data).hexdigest() == asset["checksum"]
    assert data.lstrip().startswith(b"solid")
    (link_call,) = [r for r in sandbox.requests if r.origin == "download"]
    assert link_call.authorization is None  # the token never goes to the link host


def test_download_into_a_directory_or_a_file_path(session, tmp_path):
    asset = asset_by_name(session, "bracket.obj")
    (tmp_path / "out").mkdir()
    assert mf.download_asset(asset["id"], tmp_path / "out", progress=False) == tmp_path / "out" / "bracket.obj"
    target = tmp_path / "new" / "renamed.obj"
    assert mf.download_asset(asset["id"], target, progress=False) == target and target.stat().st_size == asset["size"]


def test_download_link_error_status_leaves_nothing(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    sandbox.inject("/blobs/*", status=403, origin="download")
    with pytest.raises(APIError) as info:
        mf.download_asset(asset["id"], progress=False)
    assert info.value.status == 403 and "Access Denied" in info.value.message
    assert "sig=REDACTED" in info.value.url
    assert list(tmp_path.iterdir()) == []


def test_download_checksum_mismatch_leaves_nothing(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    sandbox.inject("/blobs/*", status=200, body=b"x" * asset["size"], content_type="application/octet-stream",
                   origin="download")
    with pytest.raises(IntegrityError, match="checksum mismatch"):
        mf.download_asset(asset["id"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_size_mismatch_leaves_nothing(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    sandbox.inject("/blobs/*", status=200, body=b"short", content_type="application/octet-stream",
                   origin="download")
    with pytest.raises(IntegrityError, match="received 5 bytes"):
        mf.download_asset(asset["id"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_interrupted_stream_leaves_nothing(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    sandbox.inject("/blobs/*", truncate=1000, origin="download")
    with pytest.raises(TransportError, match="interrupted"):
        mf.download_asset(asset["id"], progress=False)
    assert list(tmp_path.iterdir()) == []


def test_download_does_not_replace_an_existing_file_on_failure(session, sandbox, tmp_path):
    asset = asset_by_name(session, "cube.stl")
    (tmp_path / "cube.stl").write_text("my precious notes")
    sandbox.inject("/blobs/*", status=200, body=b"x" * asset["size"], content_type="application/octet-stream",
                   origin="download")
    with pytest.raises(IntegrityError):
        mf.download_asset(asset["id"], progress=False, overwrite=True)
    assert (tmp_path / "cube.stl").read_text() == "my precious notes" and part_files(tmp_path) == []


def test_download_unknown_asset_is_404(session):
    with pytest.raises(APIError) as info:
        mf.download_asset("987654", progress=False)
    assert info.value.status == 404


def test_download_shows_progress_in_a_terminal(session, capsys):
    asset = asset_by_name(session, "cube.stl")
    mf.download_asset(asset["id"])
    assert "download cube.stl" in capsys.readouterr().err


# -- upload ---------------------------------------------------------------------------


def test_upload_round_trip(session, sandbox, tmp_path):
    payload = bytes(range(256)) * 4096  # 1 MiB
    src = tmp_path / "lattice.bin"
    src.write_bytes(payload)
    df = mf.upload_asset(src, progress=False)
    assert len(df) == 1 and leading(df, "assets") == expected_dtypes("assets")
    row = df.iloc[0]
    assert row["filename"] == "lattice.bin" and row["size"] == len(payload)
    assert row["checksum"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    back = mf.download_asset(row["id"], tmp_path / "back.bin", progress=False)
    assert back.read_bytes() == payload


def test_upload_missing_file_is_a_clear_error(session, tmp_path):
    with pytest.raises(MetafoldError, match="does not exist"):
        mf.upload_asset(tmp_path / "nope.stl", progress=False)


def test_upload_existing_filename_is_a_clear_error(session, tmp_path):
    (tmp_path / "cube.stl").write_text("solid x\nendsolid x\n")
    with pytest.raises(MetafoldError, match="already has an asset named 'cube.stl'"):
        mf.upload_asset(tmp_path / "cube.stl", progress=False)


def test_upload_over_quota_says_the_limit_is_reached(session, sandbox, tmp_path):
    sandbox.set_quota(**{"import": 0})
    src = tmp_path / "over.stl"
    src.write_bytes(b"solid a\nendsolid a\n")
    with pytest.raises(APIError) as info:
        mf.upload_asset(src, progress=False)
    assert info.value.status == 403 and info.value.message == "Import quota exceeded"  # in either error shape
    assert "usage limit is reached" in info.value.hint
    assert "%metafold quota" in info.value.hint and "%metafold license" in info.value.hint


def test_upload_replayed_after_a_revoked_token(session, sandbox, tmp_path):
    src = tmp_path / "after-revoke.stl"
    src.write_bytes(b"solid a\nendsolid a\n" * 100)
    sandbox.revoke_tokens()
    df = mf.upload_asset(src, progress=False)
    assert df.iloc[0]["size"] == src.stat().st_size
    posts = [r.status for r in sandbox.requests if r.method == "POST" and r.path.endswith("/assets")]
    assert posts == [201]  # the 401 came on the duplicate check (a GET), then one POST


# -- workflows --------------------------------------------------------------------------


def test_run_workflow_success_returns_jobs(session, sandbox, answer_shape):
    before = {a["id"] for a in session.get_json(f"/projects/{session.project_id}/assets")}
    jobs = mf.run_workflow(OK_WORKFLOW, progress=False)
    polls = {r.path for r in sandbox.requests if r.path.endswith("/status")}
    # without a link in the dispatch answer (the reference's shape) the client polls the documented path
    assert polls == {f"/projects/{session.project_id}/workflows/{jobs.iloc[0]['workflow_id']}/status"}
    assert list(jobs["name"]) == ["preprocess", "sample", "remesh"]
    assert set(jobs["state"]) == {"success"}
    assert leading(jobs, "jobs") == expected_dtypes("jobs")
    assert jobs["duration"].notna().all() and (jobs["duration"] >= pd.Timedelta(0)).all()
    after = session.get_json(f"/projects/{session.project_id}/assets")
    assert {a["id"] for a in after} > before  # output assets were produced


def test_run_workflow_parameters_and_assets_by_id(session):
    cube = asset_by_name(session, "cube.stl")
    definition = "jobs:\n  preprocess:\n    type: mesh/preprocess\n"
    jobs = mf.run_workflow(definition, parameters={"preprocess.resolution": 64},
                           assets={"preprocess.mesh": cube["id"]}, progress=False)
    inputs = jobs.iloc[0]["inputs"]
    assert inputs["params"]["resolution"] == "64"
    assert inputs["assets"]["mesh"]["filename"] == "cube.stl"


def test_run_workflow_failure_warns_and_returns_jobs(session):
    with pytest.warns(WorkflowFailedWarning, match=r"failure: job 'explode' \(sandbox/fail\): Simulated"):
        jobs = mf.run_workflow(FAILING_WORKFLOW, progress=False)
    states = dict(zip(jobs["name"], jobs["state"]))
    assert states["prepare"] == "success" and states["explode"] == "failure"
    assert jobs.set_index("name").loc["explode", "error"]


def test_run_workflow_wait_false_returns_the_workflow_row(session):
    df = mf.run_workflow(OK_WORKFLOW, wait=False, progress=False)
    assert len(df) == 1 and leading(df, "workflows") == expected_dtypes("workflows")
    assert df.iloc[0]["state"] in ("pending", "started") and len(df.iloc[0]["jobs"]) == 3


def test_run_workflow_timeout_names_the_workflow(session, sandbox):
    with pytest.raises(PollTimeout) as info:
        mf.run_workflow(OK_WORKFLOW, parameters={"sandbox.duration": "30"}, timeout=1.2, progress=False)
    assert info.value.workflow_id in str(info.value) and "1.2 s" in str(info.value)


def test_run_workflow_ctrl_c_cancels_remotely(session, sandbox):
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    with pytest.raises(KeyboardInterrupt, match="was cancelled on the server"):
        mf.run_workflow(OK_WORKFLOW, parameters={"sandbox.duration": "30"}, progress=False)
    timer.cancel()
    (workflow,) = [w for w in session.get_json(f"/projects/{session.project_id}/workflows")
                   if w["state"] not in ("success", "failure")]
    assert workflow["state"] == "canceled"


def test_run_workflow_poll_interval_grows(session, sandbox):
    started = time.monotonic()
    mf.run_workflow(OK_WORKFLOW, parameters={"sandbox.duration": "6"}, progress=False)
    elapsed = time.monotonic() - started
    polls = [r for r in sandbox.requests if r.path.endswith("/status")]
    assert 4 <= len(polls) <= 8  # 0.5, 0.75, 1.1, 1.7, 2.5... not one per 0.5 s
    assert elapsed < 6 + 3.8  # finished within one poll interval of completion


def test_run_workflow_bad_yaml_is_a_400(session):
    with pytest.raises(APIError) as info:
        mf.run_workflow("jobs: [unclosed", progress=False)
    assert info.value.status == 400 and info.value.message.startswith("definition: ")


def test_run_workflow_accepts_a_dict(session):
    jobs = mf.run_workflow({"jobs": {"only": {"type": "mesh/preprocess"}}}, progress=False)
    assert list(jobs["name"]) == ["only"]


# -- the official SDK ------------------------------------------------------------------------


@pytest.mark.answer_shapes("live")  # the SDK's own models parse RFC 1123 only and reject unknown keys
def test_sdk_client_shares_the_session_token(session, sandbox):
    pytest.importorskip("metafold")
    client = mf.sdk_client()
    projects = client.projects.list()
    assert {p.id for p in projects} == set(mf.projects()["id"])
    assert client.assets.list()[0].checksum.startswith("sha256:")
    sandbox.revoke_tokens()
    session.get_json("/user/usage")  # the session refreshes...
    assert client.projects.get(sandbox.default_project_id).name  # ...and the SDK client follows
    assert sandbox.token_exchanges == 2


def test_sdk_client_without_the_package_is_a_clear_error(session, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "metafold", None)
    with pytest.raises(MetafoldError, match="SDK .* is not installed") as info:
        mf.sdk_client()
    assert "pip install 'metafold-jupyter[sdk]'" in info.value.hint


def test_no_warning_noise_on_success(session):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mf.run_workflow("jobs:\n  a:\n    type: mesh/preprocess\n", progress=False)
