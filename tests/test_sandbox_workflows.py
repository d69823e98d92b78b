"""Workflow dispatch, the time-based job state machine, outputs, status polling and cancel."""

from __future__ import annotations

import time

import pytest
import requests

from metafold_jupyter.sandbox.replies import FieldError
from metafold_jupyter.sandbox.workflows import parse_definition

pytestmark = pytest.mark.timeout(60)

JOB_KEYS = {"id", "name", "type", "state", "created", "started", "finished", "error", "inputs", "outputs",
            "needs", "project_id", "workflow_id", "assets", "parameters", "meta"}
WORKFLOW_KEYS = {"id", "jobs", "state", "created", "started", "finished", "definition", "project_id"}

PIPELINE = """\
jobs:
  prep:
    type: mesh/preprocess
    assets:
      mesh: cube.stl
  sample:
    type: implicit/from-mesh
    needs: [prep]
    assets:
      mesh: prep.mesh
    parameters:
      resolution: 16
  remesh:
    type: mesh/from-volume
    needs: sample
"""


class Api:
    def __init__(self, sb):
        self.sb = sb
        self.pid = sb.default_project_id
        self.http = requests.Session()
        token = self.http.post(sb.url + "/oauth/token", json={
            "grant_type": "client_credentials", "client_id": sb.client_id,
            "client_secret": sb.client_secret, "audience": sb.audience}, timeout=10).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path, **kw):
        return self.http.get(path if path.startswith("http") else self.sb.url + path, timeout=10, **kw)

    def post(self, path, **kw):
        return self.http.post(self.sb.url + path, timeout=10, **kw)

    def delete(self, path, **kw):
        return self.http.delete(self.sb.url + path, timeout=10, **kw)

    def run(self, definition, **body):
        return self.post(f"/projects/{self.pid}/workflows", json={"definition": definition, **body})

    def job(self, jid):
        return self.get(f"/projects/{self.pid}/jobs/{jid}").json()

    def wait(self, link, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.get(link)
            if r.status_code != 202:
                return r
            time.sleep(0.1)
        raise AssertionError("workflow did not finish")


@pytest.fixture
def api(sandbox):
    client = Api(sandbox)
    yield client
    client.http.close()


def test_workflow_dispatch_is_202_with_link_and_job_ids(api, sandbox):
    # 60 s: the first job starts after a 0.5 s queue, the others long after this test
    r = api.run(PIPELINE, parameters={"sandbox.duration": "60"})
    assert r.status_code == 202
    wf = r.json()
    assert set(wf) == WORKFLOW_KEYS | {"link"}
    assert wf["link"] == f"{sandbox.url}/projects/{api.pid}/workflows/{wf['id']}/status"
    assert wf["state"] == "pending" and wf["started"] is None and wf["finished"] is None
    assert wf["definition"] == PIPELINE and len(wf["jobs"]) == 3
    jobs = [api.job(j) for j in wf["jobs"]]
    assert [j["name"] for j in jobs] == ["prep", "sample", "remesh"]
    assert all(set(j) == JOB_KEYS and j["workflow_id"] == wf["id"] for j in jobs)
    assert [j["needs"] for j in jobs] == [[], [jobs[0]["id"]], [jobs[1]["id"]]]
    assert [j["state"] for j in jobs[1:]] == ["pending", "pending"] and jobs[0]["state"] in ("pending", "started")
    assert all(j["outputs"] == {"params": None, "assets": None} and j["assets"] == [] for j in jobs)
    assert all(j["finished"] is None and j["error"] is None for j in jobs)
    assert jobs[0]["inputs"]["assets"]["mesh"]["filename"] == "cube.stl"
    assert jobs[1]["inputs"]["params"] == {"resolution": "16"}
    plain = api.get(f"/projects/{api.pid}/workflows/{wf['id']}").json()
    assert set(plain) == WORKFLOW_KEYS
    assert api.get("/user/usage").json()["simulation"] == 4


def test_workflow_jobs_go_pending_started_success_with_outputs(api):
    wf = api.run(PIPELINE).json()
    seen: dict[str, list[str]] = {}
    statuses = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = api.get(wf["link"])
        statuses.add(r.status_code)
        for j in wf["jobs"]:
            state = api.job(j)["state"]
            if not seen.get(j) or seen[j][-1] != state:
                seen.setdefault(j, []).append(state)
        if r.status_code == 201:
            break
        time.sleep(0.05)
    assert statuses == {202, 201}
    assert all(states[-1] == "success" for states in seen.values())
    assert seen[wf["jobs"][-1]][:2] == ["pending", "started"]
    done = api.get(wf["link"]).json()
    assert set(done) == WORKFLOW_KEYS | {"link"} and done["state"] == "success"
    jobs = [api.job(j) for j in wf["jobs"]]
    assert done["started"] == jobs[0]["started"] and done["finished"] == jobs[-1]["finished"]
    remesh = jobs[2]
    mesh = remesh["outputs"]["assets"]["mesh"]
    assert mesh["job_id"] == remesh["id"] and mesh["filename"] == f"remesh-{remesh['id']}.stl"
    assert remesh["assets"] == [mesh] and remesh["outputs"]["params"]["triangles"] == "8"
    assert remesh["inputs"] == {"params": None, "assets": None}  # no inputs in the definition
    stl = requests.get(api.get(f"/projects/{api.pid}/assets/{mesh['id']}", params={"download": "true"})
                       .json()["link"], timeout=10).content
    assert stl.startswith(b"solid remesh") and stl.count(b"endfacet") == 8
    assert jobs[1]["inputs"]["assets"]["mesh"] == jobs[0]["outputs"]["assets"]["mesh"]
    listed = {a["id"] for a in api.get(f"/projects/{api.pid}/assets", params={"q": f"id:{mesh['id']}"}).json()}
    assert listed == {mesh["id"]}


def test_workflow_failing_job_fails_workflow_and_cancels_downstream(api):
    wf = api.run("jobs:\n  ok:\n    type: mesh/preprocess\n  boom:\n    type: sandbox/fail\n    needs: [ok]\n"
                 "  after:\n    type: mesh/from-volume\n    needs: [boom]\n").json()
    done = api.wait(wf["link"])
    assert done.status_code == 201 and done.json()["state"] == "failure"
    ok, boom, after = (api.job(j) for j in wf["jobs"])
    assert ok["state"] == "success"
    assert boom["state"] == "failure" and boom["error"].startswith("Simulated failure")
    assert boom["outputs"] == {"params": None, "assets": None}
    assert after["state"] == "canceled" and after["started"] is None and after["finished"] == boom["finished"]
    assert done.json()["finished"] == boom["finished"]


def test_workflow_cancel_running_then_cancel_again_is_400(api):
    wf = api.run("jobs:\n  slow:\n    type: sim/custom\n  next:\n    type: sim/custom\n    needs: [slow]\n",
                 parameters={"sandbox.duration": "60"}).json()
    r = api.post(f"/projects/{api.pid}/workflows/{wf['id']}/cancel")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == WORKFLOW_KEYS and body["state"] == "canceled" and body["finished"] is not None
    assert {api.job(j)["state"] for j in wf["jobs"]} == {"canceled"}
    status = api.get(wf["link"])
    assert status.status_code == 201 and status.json()["state"] == "canceled"
    again = api.post(f"/projects/{api.pid}/workflows/{wf['id']}/cancel")
    assert again.status_code == 400 and again.json()["msg"].startswith("Workflow has already finished")


def test_workflow_duration_override_keeps_it_running(api):
    wf = api.run("jobs:\n  long:\n    type: sim/custom\n", parameters={"sandbox.duration": "60"}).json()
    time.sleep(1.2)  # longer than the fixture's workflow_duration of 1 s
    r = api.get(wf["link"])
    assert r.status_code == 202 and r.json() == {"state": "started"}
    assert api.job(wf["jobs"][0])["inputs"]["params"] is None  # not a job parameter
    bad = api.run("jobs:\n  a:\n    type: x\n", parameters={"sandbox.duration": "soon"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "parameters"


@pytest.mark.parametrize(
    ("definition", "fragment"),
    [
        ("jobs: [unclosed", "Invalid YAML"),
        ("", "Field is required"),
        ("name: no jobs here", "'jobs'"),
        ("jobs: {}", "'jobs'"),
        ("jobs:\n  a:\n    needs: []\n", "has no 'type'"),
        ("jobs:\n  a:\n    type: x\n    needs: [ghost]\n", "unknown job 'ghost'"),
        ("jobs:\n  a:\n    type: x\n    needs: [b]\n  b:\n    type: x\n    needs: [a]\n", "cycle"),
    ],
)
def test_workflow_bad_definition_is_400_on_definition(api, definition, fragment):
    r = api.run(definition)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["field"] == "definition" and fragment in error["msg"]


def test_workflow_unknown_asset_or_job_key_is_400(api):
    r = api.run("jobs:\n  a:\n    type: mesh/preprocess\n", assets={"a.mesh": "missing.stl"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "assets"
    assert "missing.stl" in r.json()["errors"][0]["msg"]
    r = api.run("jobs:\n  a:\n    type: mesh/preprocess\n    assets: {mesh: nope.obj}\n")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "assets"
    r = api.run("jobs:\n  a:\n    type: x\n", parameters={"b.size": "1"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "parameters"
    ok = api.run("jobs:\n  a:\n    type: mesh/preprocess\n", assets={"a.mesh": "bracket.obj"},
                 parameters={"a.scale": 2})
    assert ok.status_code == 202
    job = api.job(ok.json()["jobs"][0])
    assert job["inputs"]["assets"]["mesh"]["filename"] == "bracket.obj"
    assert job["inputs"]["params"] == {"scale": "2"} and job["parameters"] == {"scale": "2"}


def test_workflow_simulation_quota_exhausted_is_403(api, sandbox):
    sandbox.set_quota(simulation=0)
    r = api.run(PIPELINE)
    assert r.status_code == 403 and r.json() == {"msg": "Simulation quota exceeded"}


def test_workflow_delete_and_job_delete(api):
    wf = api.run(PIPELINE).json()
    assert api.delete(f"/projects/{api.pid}/jobs/{wf['jobs'][2]}").status_code == 200
    assert api.get(f"/projects/{api.pid}/workflows/{wf['id']}").json()["jobs"] == wf["jobs"][:2]
    assert api.delete(f"/projects/{api.pid}/workflows/{wf['id']}").status_code == 200
    assert api.get(f"/projects/{api.pid}/workflows/{wf['id']}").status_code == 404
    assert api.get(f"/projects/{api.pid}/jobs/{wf['jobs'][0]}").status_code == 404
    assert api.get(wf["link"]).status_code == 404


def test_workflow_seed_is_consistent(api):
    workflows = api.get(f"/projects/{api.pid}/workflows").json()
    assert {w["state"] for w in workflows} == {"success", "failure"}
    for wf in workflows:
        jobs = [api.job(j) for j in wf["jobs"]]
        assert wf["started"] == jobs[0]["started"]
        assert wf["finished"] == max((j for j in jobs if j["finished"]), key=lambda j: int(j["id"]))["finished"]
        for job in jobs:
            for asset in (job["outputs"]["assets"] or {}).values():
                assert api.get(f"/projects/{api.pid}/assets/{asset['id']}").json() == asset
    failed = api.get(f"/projects/{api.pid}/jobs", params={"q": "state:failure"}).json()
    assert len(failed) == 1 and failed[0]["error"]


def test_workflow_parse_definition_orders_by_dependencies():
    specs = parse_definition("jobs:\n  c:\n    type: x\n    needs: [a, b]\n  b:\n    type: x\n    needs: a\n"
                             "  a:\n    type: x\n    parameters: {n: [1, 2], s: str}\n")
    assert [s.name for s in specs] == ["a", "b", "c"]
    assert specs[0].params == {"n": "[1, 2]", "s": "str"}
    with pytest.raises(FieldError):
        parse_definition("jobs:\n  a:\n    type: x\n    needs: [a]\n")
