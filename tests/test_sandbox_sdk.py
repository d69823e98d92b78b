"""The official ``metafold`` SDK, unmodified, against the sandbox (the conformance test).

The SDK builds strict attrs models from every response and raises TypeError on
any key it does not know, so this is the check that the sandbox answers with
exactly the contract's keys and formats.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import requests

from metafold_jupyter.sandbox import Sandbox

metafold = pytest.importorskip("metafold", reason="the official metafold SDK (Python >= 3.11) is not installed")
from metafold import MetafoldClient  # noqa: E402
from metafold.projects import Access  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def client(sandbox):
    """An SDK client in access-token mode (its client-credentials mode needs https: see the TLS test below)."""
    r = requests.post(
        sandbox.url + "/oauth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
            "audience": sandbox.audience,
        },
        timeout=10,
    )
    r.raise_for_status()
    c = MetafoldClient(access_token=r.json()["access_token"], project_id=sandbox.default_project_id,
                       base_url=sandbox.url + "/")
    yield c
    c._session.close()


def test_sdk_projects_list_get_sort_filter(client, sandbox):
    projects = client.projects.list()
    assert len(projects) == 10
    assert [p.id for p in projects] == sorted((p.id for p in projects), key=int, reverse=True)
    assert client.projects.get().name == "Sandbox playground"
    by_name = client.projects.list(sort="name:1")
    assert [p.name for p in by_name] == sorted((p.name for p in by_name), key=str.casefold)
    hits = client.projects.list(q="name:*heat*")
    assert {p.name for p in hits} == {"Gyroid heat exchanger", "Heat sink comparison"}
    assert {p.access for p in projects} == set(Access)


def test_sdk_project_create_duplicate_update_delete(client, sandbox):
    created = client.projects.create("SDK made", access="public", data={"units": "mm"})
    assert (created.name, created.access, created.project) == ("SDK made", Access.PUBLIC, {"units": "mm"})
    copy = client.projects.duplicate(created.id, "SDK copy")
    assert copy.id != created.id and copy.project == {"units": "mm"} and copy.access == Access.PRIVATE
    updated = client.projects.update(copy.id, name="SDK renamed", graph={"nodes": []}, access="org")
    assert (updated.name, updated.graph, updated.access) == ("SDK renamed", {"nodes": []}, Access.ORG)
    client.projects.delete(copy.id)
    assert copy.id not in {p.id for p in client.projects.list()}
    with pytest.raises(requests.HTTPError, match="Resource does not exist"):
        client.projects.get(copy.id)


def test_sdk_assets_upload_list_get_download(client, tmp_path):
    payload = b"solid sdk\nendsolid sdk\n" * 1000
    src = tmp_path / "sdk-part.stl"
    src.write_bytes(payload)
    asset = client.assets.create(src)
    assert asset.filename == "sdk-part.stl" and asset.size == len(payload)
    assert asset.checksum == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert asset.id in {a.id for a in client.assets.list()}
    assert client.assets.get(asset.id) == asset
    assert [a.filename for a in client.assets.list(q="filename:sdk-*")] == ["sdk-part.stl"]
    dest = tmp_path / "downloaded.stl"
    client.assets.download_file(asset.id, dest)
    assert dest.read_bytes() == payload
    client.assets.delete(asset.id)
    assert asset.id not in {a.id for a in client.assets.list()}


def test_sdk_workflow_run_to_success_with_outputs(client, sandbox):
    definition = """
jobs:
  prep:
    type: mesh/preprocess
    assets: {mesh: cube.stl}
  sample:
    type: implicit/from-mesh
    needs: [prep]
    assets: {mesh: prep.mesh}
  metrics:
    type: implicit/metrics
    needs: [sample]
  remesh:
    type: mesh/from-volume
    needs: [sample]
"""
    workflow = client.workflows.run(definition, parameters={"sample.resolution": "[16, 16, 16]"}, timeout=30)
    assert workflow.state == "success" and workflow.link and workflow.finished is not None
    jobs = [client.jobs.get(j) for j in workflow.jobs]
    assert [j.state for j in jobs] == ["success"] * 4
    assert jobs[1].inputs.params == {"resolution": "[16, 16, 16]"}
    assert jobs[1].inputs.assets["mesh"].job_id == jobs[0].id
    mesh = workflow.get_asset("remesh.mesh")
    assert mesh is not None and mesh.filename.endswith(".stl") and mesh.job_id == jobs[3].id
    assert float(workflow.get_parameter("metrics.volume")) > 0
    assert workflow.get_parameter("metrics.nope") is None


def test_sdk_lists_of_jobs_and_workflows_parse(client):
    jobs = client.jobs.list()
    assert {"success", "failure", "canceled"} <= {j.state for j in jobs}
    failed = client.jobs.list(q="state:failure")
    assert len(failed) == 1 and failed[0].error.startswith("Solver diverged")
    workflows = client.workflows.list(sort="created:1")
    assert [w.state for w in workflows] == ["success", "failure"]
    assert client.workflows.get(workflows[0].id).jobs == workflows[0].jobs
    assert client.jobs.list(sort="finished:-1", q="!state:canceled")[0].name == "export-obj"


def test_sdk_workflow_cancel_and_failure(client, sandbox):
    running = client.workflows.run_async("jobs:\n  slow:\n    type: sim/custom\n",
                                         parameters={"sandbox.duration": "30"})
    canceled = client.workflows.cancel(running.id)
    assert canceled.state == "canceled"
    failed = client.workflows.run("jobs:\n  boom:\n    type: sandbox/fail\n  after:\n    type: sim/custom\n"
                                  "    needs: [boom]\n", timeout=30)
    assert failed.state == "failure"
    boom, after = (client.jobs.get(j) for j in failed.jobs)
    assert boom.state == "failure" and "Simulated failure" in boom.error
    assert after.state == "canceled"


def test_sdk_runs_metafolds_example_workflow_as_its_helpers_read_it(client, sandbox):
    """sample-mesh.yml with the input supplied at dispatch, read back as the SDK's own helpers do."""
    definition = (Path(__file__).resolve().parent.parent / "notebooks" / "workflows" / "sample-mesh.yml").read_text()
    workflow = client.workflows.run(definition, assets={"preprocess-mesh.mesh": "cube.stl"},
                                    parameters={"sample-mesh.resolution": "24"}, timeout=30)
    assert workflow.state == "success"
    volume = workflow.get_asset("sample-mesh.volume")
    assert volume is not None and volume.filename.endswith(".bin")
    # what the SDK's compression simulation reads from a sampled mesh
    patch = {k: json.loads(workflow.get_parameter(f"sample-mesh.patch_{k}")) for k in ("size", "offset", "resolution")}
    assert patch["resolution"] == [24, 24, 24] and len(patch["size"]) == len(patch["offset"]) == 3
    metrics = client.workflows.run("jobs:\n  metrics:\n    type: implicit/metrics\n",
                                   assets={"metrics.volume": volume.filename},
                                   parameters={"metrics.volume_size": json.dumps(patch["size"])}, timeout=30)
    assert 900 < float(metrics.get_parameter("metrics.interior_volume")) <= 1000
    for job_id in workflow.jobs:
        job = client.jobs.get(job_id)
        assert job.state == "success" and job.outputs.assets


CUBE_STL = b"""solid cube
facet normal 0 0 -1
 outer loop
  vertex 0 0 0
  vertex 1 1 0
  vertex 1 0 0
 endloop
endfacet
facet normal 0 0 -1
 outer loop
  vertex 0 0 0
  vertex 0 1 0
  vertex 1 1 0
 endloop
endfacet
endsolid cube
"""


def test_sdk_client_credentials_login_over_tls(monkeypatch, tmp_path):
    """The SDK's own login, as Metafold's examples/run_workflow.py does it, unmodified: it builds
    https://<auth_domain>/oauth/token and sends its base URL (with the trailing slash) as the
    audience; the throwaway CA is trusted through REQUESTS_CA_BUNDLE."""
    with Sandbox(tls=True, workflow_duration=0.5) as sb:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sb.ca_bundle))
        netloc = sb.url.removeprefix("https://")
        m = MetafoldClient(project_id=sb.default_project_id, client_id=sb.client_id,
                           client_secret=sb.client_secret, auth_domain=netloc, base_url=f"https://{netloc}/")
        try:
            projects = m.projects.list()
            assert len(projects) == 10 and m.projects.get().name == "Sandbox playground"
            token_call = next(r for r in sb.requests if r.path == "/oauth/token")
            assert token_call.status == 200
            mesh = tmp_path / "sdk-cube.stl"
            mesh.write_bytes(CUBE_STL)
            asset = m.assets.create(mesh.resolve())
            assert asset.filename == "sdk-cube.stl" and asset.checksum == "sha256:" + hashlib.sha256(CUBE_STL).hexdigest()
            # Metafold's own example workflow, as published, with the uploaded mesh as its input
            definition = (Path(__file__).resolve().parent.parent / "notebooks" / "workflows" / "sample-mesh.yml"
                          ).read_text()
            workflow = m.workflows.run(definition, assets={"preprocess-mesh.mesh": "sdk-cube.stl"},
                                       parameters={"sample-mesh.resolution": "16"}, timeout=60)
            assert workflow.state == "success"
            jobs = [m.jobs.get(j) for j in workflow.jobs]
            assert [j.state for j in jobs] == ["success"] * 3
            assert jobs[0].inputs.assets["mesh"].id == asset.id
            # one token for the whole session, every call over HTTPS, connections kept alive
            assert sb.token_exchanges == 1 and len(sb.issued_tokens) == 1
            api_calls = [r for r in sb.requests if r.origin == "api"]
            assert len(api_calls) > 5 and sb.accepted_connections["api"] < len(api_calls)
        finally:
            m._session.close()
