"""The sandbox API over loopback HTTP: resources, keys, status codes and error shapes."""

from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from helpers import SandboxApi
from werkzeug.test import Client

pytestmark = pytest.mark.timeout(60)

PROJECT_KEYS = {"id", "user", "name", "access", "type", "created", "modified", "thumbnail", "project", "graph"}
ASSET_KEYS = {"id", "filename", "size", "checksum", "created", "modified", "project_id", "job_id"}
RFC1123 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                     r"\d\d:\d\d:\d\d GMT$")


class Api(SandboxApi):
    """requests against one sandbox with a fresh token."""


@pytest.fixture
def api(sandbox):
    client = Api(sandbox)
    yield client
    client.http.close()


def test_projects_list_has_exact_keys_and_seed(api):
    r = api.get("/projects")
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    projects = r.json()
    assert isinstance(projects, list) and len(projects) == 10
    assert all(set(p) == PROJECT_KEYS for p in projects)
    assert all(isinstance(p["id"], str) and RFC1123.match(p["created"]) for p in projects)
    assert {p["access"] for p in projects} == {"private", "public", "org"}
    assert {p["type"] for p in projects} == {"unspecified", "digital_test_bench_experiment"}
    assert {p["created"][8:16] for p in projects} >= {"Jan 2025", "Feb 2025", "Mar 2025", "May 2025"}
    assert any(p["thumbnail"] for p in projects) and any(p["thumbnail"] is None for p in projects)
    assert any(p["graph"] for p in projects) and any(p["project"] is None for p in projects)
    assert {p["user"] for p in projects} == {f"{api.sb.client_id}@clients"}


def test_projects_of_other_users_are_invisible(api):
    ids = {p["id"] for p in api.get("/projects").json()}
    assert "5" not in ids
    assert api.get("/projects/5").status_code == 404
    assert api.get("/projects/5/assets").status_code == 404


def test_project_get_unknown_is_404_shape(api):
    for path in ("/projects/99999", "/projects/abc", "/projects/03"):
        r = api.get(path)
        assert r.status_code == 404
        assert r.json() == {"code": 404, "name": "Not Found", "description": "Resource does not exist"}


def test_unknown_route_is_404_and_wrong_method_405(api, sandbox):
    r = requests.get(sandbox.url + "/nothing/here", timeout=10)
    assert r.status_code == 404 and r.json()["description"] == "Resource does not exist"
    r = api.put("/projects")
    assert r.status_code == 405
    assert r.json() == {"code": 405, "name": "Method Not Allowed",
                        "description": "The method is not allowed for the requested URL."}
    assert set(r.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


def test_project_create_defaults_and_usage(api):
    usage, quota = api.get("/user/usage").json(), api.get("/user/quota").json()
    r = api.post("/projects", json={"name": "New one", "project": {"a": 1}})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == PROJECT_KEYS
    assert (body["access"], body["type"], body["project"], body["graph"]) == ("private", "unspecified", {"a": 1}, None)
    assert int(body["id"]) > 11 and body["created"] == body["modified"]
    assert api.get("/user/usage").json()["project"] == usage["project"] + 1
    assert api.get("/user/quota").json()["project"] == quota["project"] - 1
    assert api.get("/projects").json()[0]["id"] == body["id"]


@pytest.mark.parametrize(
    ("body", "field", "msg"),
    [
        ({}, "name", "Field is required"),
        ({"name": ""}, "name", "Field is required"),
        ({"name": "x", "access": "secret"}, "access", "Must be one of: private, public, org"),
        ({"name": "x", "type": "weird"}, "type", "Must be one of: unspecified, digital_test_bench_experiment"),
        ({"name": "x", "project": [1]}, "project", "Not a valid mapping"),
        ({"name": "x", "source": "99999"}, "source", "Project '99999' does not exist"),
    ],
)
def test_project_create_invalid_is_400_errors_list(api, body, field, msg):
    r = api.post("/projects", json=body)
    assert r.status_code == 400
    assert r.json() == {"errors": [{"field": field, "msg": msg}]}


def test_project_create_bad_json_is_400(api):
    r = api.post("/projects", data=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "body"


def test_project_quota_exhausted_is_403_msg(api, sandbox):
    sandbox.set_quota(project=1)
    assert api.post("/projects", json={"name": "last"}).status_code == 201
    r = api.post("/projects", json={"name": "one too many"})
    assert r.status_code == 403 and r.json() == {"msg": "Project quota exceeded"}
    assert api.get("/user/quota").json()["project"] == 0


def test_project_duplicate_copies_data(api):
    r = api.post("/projects", json={"source": "1", "name": "Copy of gyroid", "access": "org"})
    assert r.status_code == 201
    copy, source = r.json(), api.get("/projects/1").json()
    assert (copy["project"], copy["graph"], copy["type"]) == (source["project"], source["graph"], source["type"])
    assert copy["access"] == "org" and copy["id"] != "1"


def test_project_update_bumps_modified_and_validates(api):
    before = api.get("/projects/2").json()
    r = api.patch("/projects/2", json={"name": "Renamed", "graph": {"nodes": [1]}, "access": "public"})
    assert r.status_code == 200
    after = r.json()
    assert (after["name"], after["graph"], after["access"]) == ("Renamed", {"nodes": [1]}, "public")
    assert after["project"] == before["project"] and after["created"] == before["created"]
    assert after["modified"] != before["modified"]
    assert api.get("/projects").json()[-2]["name"] == "Renamed"
    r = api.patch("/projects/2", json={"access": "everyone"})
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "access"


def test_project_delete_removes_its_resources(api):
    pid = api.pid
    assert api.delete(f"/projects/{pid}").status_code == 200
    assert api.get(f"/projects/{pid}").status_code == 404
    assert api.get(f"/projects/{pid}/jobs").status_code == 404
    assert api.delete(f"/projects/{pid}").status_code == 404


def test_user_usage_quota_license(api):
    usage, quota = api.get("/user/usage").json(), api.get("/user/quota").json()
    assert set(usage) == set(quota) == {"project", "import", "export", "simulation"}
    assert all(isinstance(v, int) and v >= 0 for v in [*usage.values(), *quota.values()])
    assert usage["project"] == 10 and usage["simulation"] >= 2
    lic = api.get("/user/license").json()
    assert set(lic) == {"issued", "expires", "expired", "product"}
    assert lic["expired"] is False and RFC1123.match(lic["issued"]) and RFC1123.match(lic["expires"])
    assert "sandbox" in lic["product"]


def test_assets_seed_has_real_meshes(api):
    assets = {a["filename"]: a for a in api.get(f"/projects/{api.pid}/assets").json()}
    assert {"cube.stl", "bracket.obj", "icosahedron.stl"} <= set(assets)
    assert all(set(a) == ASSET_KEYS for a in assets.values())
    cube = requests.get(api.get(f"/projects/{api.pid}/assets/{assets['cube.stl']['id']}",
                                params={"download": "true"}).json()["link"], timeout=10).content
    assert cube.startswith(b"solid cube") and cube.count(b"facet normal") == 12
    outputs = [a for a in assets.values() if a["job_id"] is not None]
    assert outputs and all(api.get(f"/projects/{api.pid}/jobs/{a['job_id']}").ok for a in outputs)


def test_asset_upload_checksum_size_and_duplicate(api, sandbox):
    payload = bytes(range(256)) * 4097
    imports = api.get("/user/usage").json()["import"]
    r = api.post(f"/projects/{api.pid}/assets", files={"file": ("part.bin", payload)})
    assert r.status_code == 201
    asset = r.json()
    assert set(asset) == ASSET_KEYS
    assert asset["size"] == len(payload)
    assert asset["checksum"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert (asset["project_id"], asset["job_id"]) == (api.pid, None)
    assert api.get(f"/projects/{api.pid}/assets/{asset['id']}").json() == asset
    dup = api.post(f"/projects/{api.pid}/assets", files={"file": ("part.bin", b"other")})
    assert dup.status_code == 400
    assert dup.json() == {"errors": [{"field": "file", "msg": "Asset with filename 'part.bin' already exists"}]}
    assert api.get("/user/usage").json()["import"] == imports + 1


def test_asset_upload_import_quota_exhausted_is_403(api, sandbox):
    sandbox.set_quota(**{"import": 0})
    r = api.post(f"/projects/{api.pid}/assets", files={"file": ("late.txt", b"x")})
    assert r.status_code == 403 and r.json() == {"msg": "Import quota exceeded"}
    assert "late.txt" not in {a["filename"] for a in api.get(f"/projects/{api.pid}/assets").json()}


def test_internal_error_is_500_shape(api, sandbox, monkeypatch):
    def broken():
        raise RuntimeError("boom")

    monkeypatch.setattr(sandbox.store, "license", broken)
    r = api.get("/user/license")
    assert r.status_code == 500
    assert set(r.json()) == {"code", "name", "description"} and r.json()["code"] == 500
    assert "boom" not in r.text


def test_asset_upload_without_file_part_is_400(api):
    r = api.post(f"/projects/{api.pid}/assets", files={"other": ("x.bin", b"x")})
    assert r.status_code == 400
    assert r.json() == {"errors": [{"field": "file", "msg": "Field is required"}]}


def test_asset_delete_then_404(api):
    aid = api.post(f"/projects/{api.pid}/assets", files={"file": ("gone.txt", b"bye")}).json()["id"]
    assert api.delete(f"/projects/{api.pid}/assets/{aid}").status_code == 200
    assert api.get(f"/projects/{api.pid}/assets/{aid}").status_code == 404


def test_asset_download_link_other_origin_no_token(api, sandbox):
    payload = b"0123456789" * 100_000
    aid = api.post(f"/projects/{api.pid}/assets", files={"file": ("data.bin", payload)}).json()["id"]
    r = api.get(f"/projects/{api.pid}/assets/{aid}", params={"download": "true"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == ASSET_KEYS | {"link"}
    link = body["link"]
    assert link.startswith(sandbox.download_url + "/") and not link.startswith(sandbox.url + "/")
    exports = api.get("/user/usage").json()["export"]
    got = requests.get(link, timeout=10)
    assert got.status_code == 200 and got.content == payload
    assert got.headers["Content-Type"] == "application/octet-stream"
    assert int(got.headers["Content-Length"]) == len(payload)
    download_requests = [q for q in sandbox.requests if q.origin == "download"]
    assert [q.authorization for q in download_requests] == [None]
    # a stray Authorization header is ignored, not required
    assert requests.get(link, headers={"Authorization": "Bearer nonsense"}, timeout=10).content == payload
    assert api.get("/user/usage").json()["export"] == exports  # exports count export jobs, not downloads


def test_asset_download_link_bad_signature_is_403_xml(api):
    link = api.get(f"/projects/{api.pid}/assets/2", params={"download": "true"}).json()["link"]
    tampered = re.sub(r"sig=[0-9a-f]{4}", "sig=0000", link)
    r = requests.get(tampered, timeout=10)
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("application/xml")
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text
    unsigned = link.split("?")[0]
    assert requests.get(unsigned, timeout=10).status_code == 403
    other = link.replace("/blobs/2/", "/blobs/3/")
    assert requests.get(other, timeout=10).status_code == 403


def test_asset_download_link_unknown_is_404(api, sandbox):
    link = api.get(f"/projects/{api.pid}/assets/2", params={"download": "true"}).json()["link"]
    api.delete(f"/projects/{api.pid}/assets/2")
    r = requests.get(link, timeout=10)
    assert r.status_code == 404 and "<Code>NoSuchKey</Code>" in r.text
    assert requests.get(sandbox.download_url + "/elsewhere", timeout=10).status_code == 404


def test_asset_download_link_expires():
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(link_lifetime=1) as sb:
        api = Api(sb)
        link = api.get(f"/projects/{api.pid}/assets/2", params={"download": "true"}).json()["link"]
        assert requests.get(link, timeout=10).status_code == 200
        expires = int(parse_qs(urlsplit(link).query)["expires"][0])
        assert expires - time.time() <= 2
        time.sleep(max(expires - time.time(), 0) + 0.2)
        r = requests.get(link, timeout=10)
        assert r.status_code == 403
        assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in r.text
        api.http.close()


def test_app_works_with_werkzeug_test_client(sandbox):
    client = Client(sandbox.app)
    r = client.post("/oauth/token", json={"grant_type": "client_credentials", "client_id": sandbox.client_id,
                                          "client_secret": sandbox.client_secret, "audience": sandbox.audience})
    token = r.get_json()["access_token"]
    r = client.get(f"/projects/{sandbox.default_project_id}",
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.get_json()["name"] == "Sandbox playground"


def test_requests_are_recorded_with_status_and_authorization(api, sandbox):
    api.get("/projects", params={"q": "name:x"})
    api.get("/projects/424242")
    records = sandbox.requests
    assert [(r.origin, r.method, r.path) for r in records] == [
        ("api", "POST", "/oauth/token"), ("api", "GET", "/projects"), ("api", "GET", "/projects/424242")]
    assert [r.status for r in records] == [200, 200, 404]
    assert records[0].authorization is None and records[1].authorization.startswith("Bearer ey")
    assert records[1].query == "q=name%3Ax"
    assert all(isinstance(r.time, float) for r in records)
    records.clear()  # a snapshot: the sandbox's own log is untouched
    assert len(sandbox.requests) == 3


def test_reset_restores_seed(api, sandbox):
    api.delete(f"/projects/{api.pid}")
    api.post("/projects", json={"name": "temp"})
    sandbox.reset()
    projects = api.get("/projects").json()
    assert [p["id"] for p in projects] == ["11", "10", "9", "8", "7", "6", "4", "3", "2", "1"]
    assert len(api.get(f"/projects/{api.pid}/assets").json()) == 9
    assert len(sandbox.requests) == 2
