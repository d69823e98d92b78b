"""The sandbox's answer shapes: live (the service, as the official SDK sees it) and the published reference."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

import pytest
import requests
from helpers import SandboxApi

from metafold_jupyter.sandbox import Sandbox
from metafold_jupyter.sandbox.shape import AnswerShape

pytestmark = pytest.mark.timeout(60)

RFC1123 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                     r"\d\d:\d\d:\d\d GMT$")
ISO8601 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")  # as the reference shows: 2006-01-02T22:04:05+00:00
STATUS_BODY_KEYS = {"code", "name", "description"}
RUN = "jobs:\n  only:\n    type: mesh/preprocess\n"


class Api(SandboxApi):
    def dates(self):
        """Every date the API shows: projects, assets, jobs (with nested assets), workflows, licence."""
        found = []
        for p in self.get("/projects").json():
            found += [p["created"], p["modified"]]
        for a in self.get(f"/projects/{self.pid}/assets").json():
            found += [a["created"], a["modified"]]
        for j in self.get(f"/projects/{self.pid}/jobs").json():
            found += [j[k] for k in ("created", "started", "finished")]
            for side in ("inputs", "outputs"):
                for nested in (j[side]["assets"] or {}).values():
                    found += [nested["created"], nested["modified"]]
        for w in self.get(f"/projects/{self.pid}/workflows").json():
            found += [w[k] for k in ("created", "started", "finished")]
        lic = self.get("/user/license").json()
        return [d for d in found + [lic["issued"], lic["expires"]] if d is not None]


@pytest.fixture
def api(sandbox):
    client = Api(sandbox)
    yield client
    client.http.close()


def test_shape_live_is_the_default(api, sandbox):
    assert (sandbox.shape.answers, sandbox.shape.date_style) == ("live", "rfc1123")
    dates = api.dates()
    assert len(dates) > 40 and all(RFC1123.match(d) for d in dates)
    assert all("link" not in a for a in api.get(f"/projects/{api.pid}/assets").json())
    run = api.post(f"/projects/{api.pid}/workflows", json={"definition": RUN})
    assert run.status_code == 202 and run.json()["link"].endswith(f"/workflows/{run.json()['id']}/status")
    assert api.post("/projects", json={}).json() == {"errors": [{"field": "name", "msg": "Field is required"}]}
    assert requests.get(sandbox.url + "/projects", timeout=10).json() == {"msg": "Missing Authorization Header"}


def test_shape_reference_dates_links_dispatch_and_errors(api, sandbox, tmp_path):
    sandbox.shape.set("reference")
    assert sandbox.shape.date_style == "iso8601"
    dates = api.dates()
    assert len(dates) > 40 and all(ISO8601.match(d) for d in dates), [d for d in dates if not ISO8601.match(d)][:3]

    listed = api.get(f"/projects/{api.pid}/assets").json()
    assert listed and all(set(a) == {"id", "filename", "size", "checksum", "created", "modified", "project_id",
                                     "job_id", "link"} for a in listed)
    cube = next(a for a in listed if a["filename"] == "cube.stl")
    body = requests.get(cube["link"], timeout=10).content  # a working signed download link, no token
    assert "sha256:" + hashlib.sha256(body).hexdigest() == cube["checksum"]
    assert "link" not in api.get(f"/projects/{api.pid}/assets/{cube['id']}").json()  # only on list items

    run = api.post(f"/projects/{api.pid}/workflows", json={"definition": RUN})
    assert run.status_code == 202 and "link" not in run.json() and ISO8601.match(run.json()["created"])
    status = api.get(f"/projects/{api.pid}/workflows/{run.json()['id']}/status")  # the documented fallback
    assert status.status_code in (201, 202)

    errors = {
        400: api.post("/projects", json={}),
        401: requests.get(sandbox.url + "/projects", timeout=10),
        404: api.get("/projects/424242"),
        405: api.put("/projects"),
    }
    sandbox.set_quota(project=0)
    errors[403] = api.post("/projects", json={"name": "over"})
    for status, resp in errors.items():
        assert resp.status_code == status and set(resp.json()) == STATUS_BODY_KEYS, (status, resp.text)
        assert resp.json()["code"] == status
    assert errors[400].json()["description"] == "name: Field is required"
    assert errors[401].json()["description"] == "Missing Authorization Header"
    assert errors[401].headers["WWW-Authenticate"] == "Bearer"
    assert errors[403].json()["description"] == "Project quota exceeded"
    assert errors[404].json() == {"code": 404, "name": "Not Found", "description": "Resource does not exist"}


@pytest.mark.parametrize(("answers", "date_style", "pattern"), [
    ("live", "iso8601", ISO8601), ("reference", "rfc1123", RFC1123)])
def test_shape_date_style_is_independent_of_the_answer_shape(api, sandbox, answers, date_style, pattern):
    sandbox.shape.set(answers, date_style)
    assert all(pattern.match(d) for d in api.dates())
    assert ("link" in api.get(f"/projects/{api.pid}/assets").json()[0]) is (answers == "reference")


def test_shape_switches_at_runtime_and_reset_restores_it(api, sandbox):
    first = api.get("/projects").json()[0]["created"]  # cached JSON: a switch must not serve the old text
    sandbox.shape.date_style = "iso8601"
    assert ISO8601.match(api.get("/projects").json()[0]["created"])
    sandbox.shape.answers = "reference"
    assert sandbox.shape.date_style == "iso8601"
    sandbox.shape.date_style = None  # follow the answer shape
    assert sandbox.shape.date_style == "iso8601"
    sandbox.reset()
    assert (sandbox.shape.answers, sandbox.shape.date_style) == ("live", "rfc1123")
    assert api.get("/projects").json()[0]["created"] == first


def test_shape_constructor_options_survive_reset():
    with Sandbox(answer_shape="reference", date_style="rfc1123") as sb:
        api = Api(sb)
        assert "link" not in api.post(f"/projects/{api.pid}/workflows", json={"definition": RUN}).json()
        sb.shape.set("live")
        sb.reset()
        assert (sb.shape.answers, sb.shape.date_style) == ("reference", "rfc1123")
        assert RFC1123.match(api.get("/projects").json()[0]["created"])
        api.http.close()


@pytest.mark.parametrize("kwargs", [{"answer_shape": "openapi"}, {"date_style": "iso"}])
def test_shape_unknown_values_are_refused(kwargs):
    with pytest.raises(ValueError, match="must be one of"):
        Sandbox(**kwargs)
    shape = AnswerShape()
    with pytest.raises(ValueError, match="must be one of"):
        shape.set(kwargs.get("answer_shape", "live"), kwargs.get("date_style"))
    assert (shape.answers, shape.date_style) == ("live", "rfc1123")


def test_shape_from_the_command_line():
    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    from common import sandbox_process

    with sandbox_process("--answer-shape", "reference", "--date-style", "rfc1123", "--no-seed") as sb:
        token = requests.post(sb.url + "/oauth/token", json={
            "grant_type": "client_credentials", "client_id": sb.client_id,
            "client_secret": sb.client_secret, "audience": "https://api.metafold3d.com"}, timeout=10).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        (project,) = requests.get(sb.url + "/projects", headers=headers, timeout=10).json()
        assert RFC1123.match(project["created"])
        missing = requests.get(sb.url + "/projects/999", headers=headers, timeout=10).json()
        assert set(missing) == STATUS_BODY_KEYS
        bad = requests.post(sb.url + "/projects", headers=headers, json={}, timeout=10).json()
        assert bad == {"code": 400, "name": "Bad Request", "description": "name: Field is required"}
