"""Workflow dispatch, input resolution, the time-based job state machine, real outputs,
status polling, cancel, the in-flight limit, the licence and the quota counters."""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from helpers import SandboxApi

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


class Api(SandboxApi):
    def run(self, definition, **body):
        return self.post(f"/projects/{self.pid}/workflows", json={"definition": definition, **body})

    def job(self, jid):
        return self.get(f"/projects/{self.pid}/jobs/{jid}").json()

    def download(self, asset_id):
        link = self.get(f"/projects/{self.pid}/assets/{asset_id}", params={"download": "true"}).json()["link"]
        r = requests.get(link, timeout=10)
        assert r.status_code == 200
        return r.content

    def finished(self, definition, **body):
        """Dispatch, wait, and return ``(workflow, {job name: job})``."""
        r = self.run(definition, **body)
        assert r.status_code == 202, r.text
        done = self.wait(r.json()["link"]).json()
        return done, {j["name"]: j for j in (self.job(i) for i in done["jobs"])}

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
    # the seed's counts (import 7, export 14, simulation 2) plus this dispatch's one export job (remesh)
    assert api.get("/user/usage").json() == {"project": 10, "import": 7, "export": 15, "simulation": 2}


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
    assert remesh["assets"] == [mesh]
    # no assets in its definition: it reads the volume of the job it needs
    assert remesh["inputs"] == {"params": None, "assets": {"volume": jobs[1]["outputs"]["assets"]["volume"]}}
    stl = api.download(mesh["id"])
    vertices, faces = read_stl(stl)
    assert len(faces) == int(remesh["outputs"]["params"]["triangles"]) > 100
    assert stl[:80].startswith(b"remesh")
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
    r = api.run(PIPELINE)  # no simulation job: not refused
    assert r.status_code == 202
    r = api.run("jobs:\n  solve:\n    type: sim/custom\n")
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


# -- helpers for real outputs ------------------------------------------------------------------

EXAMPLES = Path(__file__).resolve().parent.parent / "notebooks" / "workflows"
STUDY = """\
jobs:
  sample:
    type: implicit/evaluate
  metrics:
    type: implicit/metrics
    needs: [sample]
    assets:
      volume: sample
  mesh:
    type: mesh/from-volume
    needs: [sample]
    assets:
      volume: sample
"""


def example(name):
    """One of Metafold's published example workflows, as kept in notebooks/workflows/."""
    return (EXAMPLES / name).read_text()


def read_stl(data):
    """A binary STL as welded (vertices, faces), parsed here independently of the sandbox."""
    (count,) = struct.unpack_from("<I", data, 80)
    assert len(data) == 84 + 50 * count, "not a binary STL"
    records = np.frombuffer(data, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")], count=count, offset=84)
    vertices, faces = np.unique(records["v"].reshape(-1, 3), axis=0, return_inverse=True)
    return vertices.astype(np.float64), faces.reshape(-1, 3)


def closed_volume(vertices, faces):
    """The enclosed volume, after checking that every edge has exactly one opposite twin."""
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]).astype(np.int64)
    forward = np.sort(edges[:, 0] * len(vertices) + edges[:, 1])
    backward = np.sort(edges[:, 1] * len(vertices) + edges[:, 0])
    assert (np.diff(forward) > 0).all(), "an edge is used twice in the same direction"
    assert np.array_equal(forward, backward), "the mesh has a boundary (not closed)"
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    return float(np.einsum("ij,ij->", a, np.cross(b, c))) / 6


def outputs(job):
    return {k: float(v) for k, v in job["outputs"]["params"].items() if k in ("volume", "area")}


# -- Metafold's own example workflows -------------------------------------------------------------


def test_workflow_metafold_sample_mesh_example_runs_with_its_real_job_types(api):
    done, jobs = api.finished(example("sample-mesh.yml"), assets={"preprocess-mesh.mesh": "bracket.obj"})
    assert done["state"] == "success", [j["error"] for j in jobs.values()]
    assert done["definition"] == example("sample-mesh.yml")
    assert {n: j["type"] for n, j in jobs.items()} == {
        "preprocess-mesh": "mesh/preprocess", "compute-bvh": "mesh/compute-bvh", "sample-mesh": "implicit/from-mesh"}
    prep, bvh, sample = jobs["preprocess-mesh"], jobs["compute-bvh"], jobs["sample-mesh"]
    assert prep["inputs"]["assets"]["mesh"]["filename"] == "bracket.obj"
    # a bare job name is that job's output
    assert bvh["inputs"]["assets"]["mesh"] == prep["outputs"]["assets"]["mesh"]
    assert sample["inputs"]["assets"] == {"mesh": prep["outputs"]["assets"]["mesh"],
                                          "bvh": bvh["outputs"]["assets"]["bvh"]}
    assert prep["outputs"]["params"]["volume"] == "6500" and prep["outputs"]["params"]["watertight"] == "true"
    assert int(bvh["outputs"]["params"]["nodes"]) >= 1
    params = sample["outputs"]["params"]
    size, offset, resolution = (json.loads(params[k]) for k in ("patch_size", "patch_offset", "patch_resolution"))
    assert len(size) == len(offset) == len(resolution) == 3
    assert offset[0] < 0 and offset[0] + size[0] > 40  # the patch holds the 40 x 30 x 20 mm bracket
    volume = api.download(sample["outputs"]["assets"]["volume"]["id"])
    assert len(volume) == 40 + 4 * math.prod(resolution)
    assert api.download(bvh["outputs"]["assets"]["bvh"]["id"]).startswith(b"MFBVH")


def test_workflow_metafold_export_mesh_example_makes_a_real_mesh(api):
    done, jobs = api.finished(example("export-mesh.yml"))
    assert done["state"] == "success"
    evaluate, export = jobs["evaluate-graph"], jobs["export-mesh"]
    assert (evaluate["type"], export["type"]) == ("implicit/evaluate", "mesh/from-volume")
    assert export["inputs"]["assets"]["volume"] == evaluate["outputs"]["assets"]["volume"]
    mesh = export["outputs"]["assets"]["mesh"]
    vertices, faces = read_stl(api.download(mesh["id"]))
    assert len(faces) == int(export["outputs"]["params"]["triangles"])
    assert closed_volume(vertices, faces) == pytest.approx(float(export["outputs"]["params"]["volume"]), rel=1e-3)
    assert np.ptp(vertices, axis=0) == pytest.approx([20, 20, 20], abs=0.1)  # the default 20 mm lattice


def test_workflow_example_outputs_feed_a_later_workflow_by_filename(api):
    _, jobs = api.finished(example("sample-mesh.yml"), assets={"preprocess-mesh.mesh": "cube.stl"},
                           parameters={"sample-mesh.resolution": "32"})
    volume_file = jobs["sample-mesh"]["outputs"]["assets"]["volume"]["filename"]
    done, later = api.finished("jobs:\n  measure:\n    type: implicit/metrics\n  remesh:\n    type: mesh/from-volume\n",
                               assets={"measure.volume": volume_file, "remesh.volume": volume_file})
    assert done["state"] == "success"
    assert later["remesh"]["inputs"]["assets"]["volume"]["filename"] == volume_file
    # the 10 mm cube, sampled and meshed again: close to 1000 mm³, slightly rounded at its edges
    assert 950 < float(later["measure"]["outputs"]["params"]["volume"]) <= 1000
    vertices, faces = read_stl(api.download(later["remesh"]["outputs"]["assets"]["mesh"]["id"]))
    assert closed_volume(vertices, faces) == pytest.approx(float(later["measure"]["outputs"]["params"]["volume"]),
                                                           rel=1e-3)


# -- input resolution ---------------------------------------------------------------------------


def test_workflow_input_named_output_and_filename_resolve(api):
    definition = ("jobs:\n  prep:\n    type: mesh/preprocess\n    assets: {mesh: icosahedron.stl}\n"
                  "  sample:\n    type: implicit/from-mesh\n    needs: [prep]\n    assets: {mesh: prep.mesh}\n"
                  "    parameters: {resolution: 24}\n")
    done, jobs = api.finished(definition)
    assert done["state"] == "success"
    assert jobs["prep"]["inputs"]["assets"]["mesh"]["filename"] == "icosahedron.stl"
    assert jobs["sample"]["inputs"]["assets"]["mesh"] == jobs["prep"]["outputs"]["assets"]["mesh"]
    # a dispatch's assets override the definition's
    done, jobs = api.finished(definition, assets={"prep.mesh": "cube.stl"})
    assert jobs["prep"]["inputs"]["assets"]["mesh"]["filename"] == "cube.stl"
    assert jobs["prep"]["outputs"]["params"]["volume"] == "1000"


@pytest.mark.parametrize(
    ("definition", "assets", "fragment"),
    [
        ("jobs:\n  a:\n    type: mesh/preprocess\n", {"a.mesh": "missing.stl"},
         "Asset 'missing.stl' (input 'mesh' of job 'a') does not exist in project 3"),
        ("jobs:\n  a:\n    type: mesh/preprocess\n", {"a.mesh": "1"}, "Asset '1' (input 'mesh'"),  # IDs are not filenames
        ("jobs:\n  a:\n    type: mesh/preprocess\n  b:\n    type: mesh/from-volume\n    needs: [a]\n", {"b.volume": "a.volume"},
         "a mesh/preprocess job has no output 'volume' (its outputs: mesh)"),
        ("jobs:\n  a:\n    type: implicit/evaluate\n  b:\n    type: mesh/from-volume\n", {"b.volume": "a"},
         "Job 'b' uses 'a' but does not list 'a' in needs"),
        ("jobs:\n  m:\n    type: implicit/metrics\n  b:\n    type: mesh/from-volume\n    needs: [m]\n", {"b.volume": "m"},
         "a implicit/metrics job makes no output asset"),
    ],
    ids=["unknown-file", "asset-id", "unknown-output", "not-in-needs", "no-output"],
)
def test_workflow_unresolvable_input_is_400_and_creates_nothing(api, definition, assets, fragment):
    before = {k: len(api.get(f"/projects/{api.pid}/{k}").json()) for k in ("workflows", "jobs", "assets")}
    usage = api.get("/user/usage").json()
    r = api.run(definition, assets=assets)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["field"] == "assets" and fragment in error["msg"], error
    assert {k: len(api.get(f"/projects/{api.pid}/{k}").json()) for k in before} == before
    assert api.get("/user/usage").json() == usage


def test_workflow_volume_job_without_a_volume_fails_with_a_clear_error(api):
    done, jobs = api.finished("jobs:\n  lonely:\n    type: implicit/metrics\n  next:\n    type: mesh/from-volume\n"
                              "    needs: [lonely]\n")
    assert done["state"] == "failure"
    assert jobs["lonely"]["error"].startswith("implicit/metrics: implicit/metrics has no 'volume' input")
    assert jobs["next"]["state"] == "canceled"


# -- parameter-dependent outputs ------------------------------------------------------------------


def study(api, *points):
    """Run the study workflow once per point (all dispatched first, as a study does); jobs by name per point."""
    links = []
    for params in points:
        r = api.run(STUDY, parameters={f"sample.{k}": json.dumps(v) for k, v in params.items()})
        assert r.status_code == 202, r.text
        links.append(r.json()["link"])
    results = []
    for link in links:
        done = api.wait(link).json()
        jobs = {j["name"]: j for j in (api.job(i) for i in done["jobs"])}
        assert done["state"] == "success", [j["error"] for j in jobs.values()]
        results.append(jobs)
    return results


def study_point(api, **params):
    return study(api, params)[0]


def test_workflow_study_volume_grows_with_thickness_and_matches_the_mesh(api):
    rows = []
    for jobs in study(api, *({"thickness": t, "resolution": 24} for t in (0.5, 1.0, 1.5, 2.0))):
        metrics = outputs(jobs["metrics"])
        vertices, faces = read_stl(api.download(jobs["mesh"]["outputs"]["assets"]["mesh"]["id"]))
        assert closed_volume(vertices, faces) == pytest.approx(metrics["volume"], rel=1e-3)
        assert outputs(jobs["mesh"]) == pytest.approx(metrics, rel=1e-5)
        assert jobs["metrics"]["outputs"]["params"]["interior_volume"] == jobs["metrics"]["outputs"]["params"]["volume"]
        rows.append(metrics["volume"])
    assert rows == sorted(rows) and rows[-1] > 2 * rows[1]


def test_workflow_study_size_scales_volume_cubed_and_area_squared(api):
    small, large = (outputs(jobs["metrics"]) for jobs in study(
        api, {"size": 10, "cell_size": 5, "thickness": 0.5, "resolution": 24},
        {"size": 20, "cell_size": 10, "thickness": 1.0, "resolution": 24}))
    assert large["volume"] / small["volume"] == pytest.approx(8, rel=1e-3)  # the same shape, twice as big
    assert large["area"] / small["area"] == pytest.approx(4, rel=1e-3)


def test_workflow_study_finer_cells_have_more_area_and_finer_sampling_converges(api):
    coarse, fine, *spheres = (outputs(jobs["metrics"]) for jobs in study(
        api, {"cell_size": 10, "resolution": 24}, {"cell_size": 5, "resolution": 24},
        *({"shape": "sphere", "radius": 8, "resolution": n} for n in (8, 16, 32))))
    assert fine["area"] > 1.5 * coarse["area"]
    exact = 4 / 3 * math.pi * 8 ** 3
    errors = [exact - sphere["volume"] for sphere in spheres]
    assert 0 < errors[2] < errors[1] < errors[0]
    assert errors[2] / exact < 0.01


def test_workflow_study_reads_a_metafold_shape_graph(api):
    graph = {"operators": [
        {"type": "GenerateSamplePoints", "parameters": {"size": [10, 10, 10], "resolution": [24, 24, 24]}},
        {"type": "SampleSurfaceLattice", "parameters": {"lattice_type": "SchwarzD", "scale": [5, 5, 5]}},
        {"type": "Threshold", "parameters": {"width": 0.5}}],
        "edges": [{"source": 0, "target": [1, "Points"]}, {"source": 1, "target": [2, "Samples"]}]}
    jobs = study_point(api, graph=graph)
    assert jobs["sample"]["outputs"]["params"]["shape"] == "diamond"
    assert json.loads(jobs["sample"]["outputs"]["params"]["patch_resolution"]) == [26, 26, 26]
    bbox = json.loads(jobs["metrics"]["outputs"]["params"]["bounding_box"])
    assert bbox == pytest.approx([-5, -5, -5, 5, 5, 5], abs=1e-3)


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_workflow_remesh_writes_other_formats(api, fmt):
    jobs = study_point(api, resolution=12)
    done, more = api.finished(f"jobs:\n  out:\n    type: mesh/from-volume\n    parameters: {{format: {fmt}}}\n",
                              assets={"out.volume": jobs["sample"]["outputs"]["assets"]["volume"]["filename"]})
    mesh = more["out"]["outputs"]["assets"]["mesh"]
    assert mesh["filename"].endswith("." + fmt)
    data = api.download(mesh["id"])
    assert data.startswith(b"ply\nformat binary_little_endian" if fmt == "ply" else b"# out")


@pytest.mark.parametrize(
    ("params", "fragment"),
    [({"thickness": "thick"}, "parameter 'thickness' must be a number"),
     ({"resolution": "2"}, "parameter 'resolution' must be one or three whole numbers in [4, 96]"),
     ({"shape": "teapot"}, "parameter 'shape' must be one of diamond, gyroid, schwarz-p, sphere")],
)
def test_workflow_bad_parameter_fails_the_job_with_its_reason(api, params, fragment):
    done, jobs = api.finished(STUDY, parameters={f"sample.{k}": v for k, v in params.items()})
    assert done["state"] == "failure"
    assert jobs["sample"]["state"] == "failure" and jobs["sample"]["error"].startswith("implicit/evaluate: ")
    assert fragment in jobs["sample"]["error"]
    assert {jobs["metrics"]["state"], jobs["mesh"]["state"]} == {"canceled"}


# -- the in-flight limit --------------------------------------------------------------------------


@pytest.fixture
def limited(sandbox):
    sandbox.max_running_workflows = 2
    yield sandbox
    sandbox.max_running_workflows = None


def counts(api):
    return ({k: len(api.get(f"/projects/{api.pid}/{k}").json()) for k in ("workflows", "jobs", "assets")},
            api.get("/user/usage").json())


def test_workflow_dispatch_past_the_limit_is_429_with_retry_after_and_creates_nothing(api, limited):
    slow = {"parameters": {"sandbox.duration": "30"}}
    first, second = (api.run("jobs:\n  a:\n    type: sim/custom\n", **slow) for _ in range(2))
    assert first.status_code == second.status_code == 202
    before = counts(api)
    refused = api.run("jobs:\n  a:\n    type: sim/custom\n", **slow)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 30
    body = refused.json()
    assert body["code"] == 429 and body["name"] == "Too Many Requests" and "limit is 2" in body["description"]
    assert api.run("jobs: [not even yaml", **slow).status_code == 429  # refused before it is read
    assert counts(api) == before
    assert api.post(f"/projects/{api.pid}/workflows/{first.json()['id']}/cancel").status_code == 200
    assert api.run("jobs:\n  a:\n    type: sim/custom\n", **slow).status_code == 202  # a slot is free again


def test_workflow_finished_workflows_free_their_slot(api, limited):
    for _ in range(2):
        api.wait(api.run("jobs:\n  quick:\n    type: mesh/preprocess\n").json()["link"])
    assert api.run("jobs:\n  quick:\n    type: mesh/preprocess\n").status_code == 202


def test_workflow_limit_from_the_constructor_and_the_command_line():
    from metafold_jupyter.sandbox import Sandbox
    from metafold_jupyter.sandbox.__main__ import build_parser

    with Sandbox(seed=False, max_running_workflows=1, workflow_duration=30) as sb:
        assert sb.max_running_workflows == 1
        client = Api(sb)
        assert client.run("jobs:\n  a:\n    type: x\n").status_code == 202
        assert client.run("jobs:\n  a:\n    type: x\n").status_code == 429
        sb.max_running_workflows = None
        assert client.run("jobs:\n  a:\n    type: x\n").status_code == 202
        with pytest.raises(ValueError, match="positive whole number"):
            sb.max_running_workflows = 0
        client.http.close()
    assert build_parser().parse_args(["--max-running-workflows", "3"]).max_running_workflows == 3
    assert build_parser().parse_args([]).max_running_workflows is None
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--max-running-workflows", "0"])


# -- licence and quota counters -------------------------------------------------------------------


def test_workflow_expired_licence_is_403_for_counted_actions_only(api, sandbox):
    sandbox.expire_license()
    licence = api.get("/user/license").json()
    assert licence["expired"] is True
    before = counts(api)
    for r in (api.run(PIPELINE), api.post("/projects", json={"name": "late"}),
              api.post(f"/projects/{api.pid}/assets", files={"file": ("late.stl", b"solid x\nendsolid x\n")})):
        assert r.status_code == 403 and r.json() == {"msg": "License expired"}
    assert counts(api) == before
    assert len(api.get("/projects").json()) == 10  # reading still works
    cube = next(a for a in api.get(f"/projects/{api.pid}/assets").json() if a["filename"] == "cube.stl")
    assert api.download(cube["id"]).startswith(b"solid cube")
    sandbox.reset()
    assert api.get("/user/license").json()["expired"] is False
    assert api.run(PIPELINE).status_code == 202


def test_workflow_quota_counts_export_and_simulation_jobs_not_downloads(api, sandbox):
    usage = api.get("/user/usage").json()
    quota = api.get("/user/quota").json()
    done, jobs = api.finished("jobs:\n  sample:\n    type: implicit/evaluate\n    parameters: {resolution: 8}\n"
                              "  mesh:\n    type: mesh/from-volume\n    needs: [sample]\n"
                              "  solve:\n    type: sim/custom\n  report:\n    type: sim/postprocess/stress\n"
                              "    needs: [solve]\n    assets: {data: solve}\n")
    assert done["state"] == "success"
    after = api.get("/user/usage").json()
    assert after == {**usage, "export": usage["export"] + 1, "simulation": usage["simulation"] + 2}
    assert api.get("/user/quota").json() == {**quota, "export": quota["export"] - 1,
                                            "simulation": quota["simulation"] - 2}
    api.download(jobs["mesh"]["outputs"]["assets"]["mesh"]["id"])
    api.download(jobs["report"]["outputs"]["assets"]["output"]["id"])
    assert api.get("/user/usage").json() == after  # downloads are not exports


def test_workflow_quota_that_cannot_cover_every_job_refuses_the_whole_dispatch(api, sandbox):
    sandbox.set_quota(export=1, simulation=1)
    before = counts(api)
    r = api.run("jobs:\n  a:\n    type: sim/custom\n  b:\n    type: sim/custom\n")
    assert r.status_code == 403 and r.json() == {"msg": "Simulation quota exceeded"}
    r = api.run("jobs:\n  v:\n    type: implicit/evaluate\n  m1:\n    type: mesh/from-volume\n    needs: [v]\n"
                "  m2:\n    type: mesh/from-volume\n    needs: [v]\n")
    assert r.status_code == 403 and r.json() == {"msg": "Export quota exceeded"}
    assert counts(api) == before
    sandbox.set_quota(export=0)
    cube = next(a for a in api.get(f"/projects/{api.pid}/assets").json() if a["filename"] == "cube.stl")
    assert api.get(f"/projects/{api.pid}/assets/{cube['id']}", params={"download": "true"}).status_code == 200
