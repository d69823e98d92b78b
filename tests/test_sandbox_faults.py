"""Fault injection and latency on the sandbox's two origins."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import pytest
import requests

from helpers import token_of  # noqa: E402

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def get(sandbox):
    headers = {"Authorization": f"Bearer {token_of(sandbox)}"}

    def _get(path, **kw):
        return requests.get(sandbox.url + path, headers=headers, timeout=10, **kw)

    return _get


def test_fault_503_twice_with_retry_after_then_ok(sandbox, get):
    sandbox.inject("/projects", status=503, count=2, retry_after=2)
    first, second, third = get("/projects"), get("/projects"), get("/projects")
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "2"
    assert first.json() == {"code": 503, "name": "Service Unavailable",
                            "description": "Service Unavailable (injected by the Metafold sandbox)"}
    assert "Retry-After" not in third.headers
    assert [r.status for r in sandbox.requests if r.path == "/projects"] == [503, 503, 200]


def test_fault_applies_before_auth(sandbox):
    sandbox.inject("/user/usage", status=429, retry_after=1)
    r = requests.get(sandbox.url + "/user/usage", timeout=10)
    assert r.status_code == 429 and r.json() == {"msg": "Too many requests"}
    assert requests.get(sandbox.url + "/user/usage", timeout=10).status_code == 401


def test_fault_glob_and_method_filters(sandbox, get):
    sandbox.inject("/projects/*/assets", method="POST", status=500)
    pid = sandbox.default_project_id
    assert get(f"/projects/{pid}/assets").status_code == 200  # GET not matched
    assert sandbox.faults and sandbox.faults[0].count == 1
    r = requests.post(f"{sandbox.url}/projects/{pid}/assets", files={"file": ("x.txt", b"x")},
                      headers={"Authorization": f"Bearer {token_of(sandbox)}"}, timeout=10)
    assert r.status_code == 500 and r.json()["code"] == 500
    assert sandbox.faults == []


def test_fault_drop_gives_connection_error(sandbox, get):
    sandbox.inject("/projects", drop=True)
    with pytest.raises(requests.ConnectionError) as info:
        get("/projects")
    assert "RemoteDisconnected" in repr(info.value) or "Connection aborted" in str(info.value)
    assert get("/projects").status_code == 200
    dropped = [r for r in sandbox.requests if r.path == "/projects"]
    assert [r.status for r in dropped] == [None, 200]


def test_fault_drop_is_remote_disconnected_for_http_client(sandbox):
    sandbox.inject("/user/license", drop=True)
    host, port = sandbox.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", "/user/license")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()


def test_fault_delay_then_normal_answer(sandbox, get):
    sandbox.inject("/user/quota", delay=0.5)
    start = time.monotonic()
    r = get("/user/quota")
    assert r.status_code == 200 and time.monotonic() - start >= 0.5


def test_fault_delay_longer_than_client_timeout(sandbox):
    sandbox.inject("/user/quota", delay=30)
    with pytest.raises(requests.Timeout):
        requests.get(sandbox.url + "/user/quota", timeout=0.3)


def test_fault_redirect_to_other_host_drops_token(sandbox, get):
    target = sandbox.download_url + "/elsewhere"
    sandbox.inject("/user/license", redirect=target)
    r = get("/user/license")
    assert r.history and r.history[0].status_code == 307
    assert r.history[0].headers["Location"] == target
    hops = [q for q in sandbox.requests if q.origin == "download"]
    assert [(q.path, q.authorization) for q in hops] == [("/elsewhere", None)]
    sandbox.inject("/user/license", redirect="http://127.0.0.1:1/x", status=302)
    r = requests.get(sandbox.url + "/user/license", allow_redirects=False, timeout=10)
    assert r.status_code == 302 and r.headers["Location"] == "http://127.0.0.1:1/x"


def test_fault_html_502_body(sandbox, get):
    page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
    sandbox.inject("/projects", status=502, body=page, content_type="text/html")
    r = get("/projects")
    assert r.status_code == 502 and r.text == page
    assert r.headers["Content-Type"].startswith("text/html")


def test_fault_on_token_endpoint_uses_auth0_shape(sandbox):
    sandbox.inject("/oauth/token", status=429, retry_after=3)
    sandbox.inject("/oauth/token", status=503)
    r = requests.post(sandbox.url + "/oauth/token", json={}, timeout=10)
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert r.json()["error"] == "too_many_requests" and "X-RateLimit-Reset" in r.headers
    r = requests.post(sandbox.url + "/oauth/token", json={}, timeout=10)
    assert r.status_code == 503 and r.json()["error"] == "server_error"
    assert token_of(sandbox)
    assert sandbox.token_exchanges == 3 and len(sandbox.issued_tokens) == 1


def test_fault_on_download_origin_is_xml(sandbox, get):
    link = get(f"/projects/{sandbox.default_project_id}/assets/2", params={"download": "true"}).json()["link"]
    sandbox.inject("/blobs/*", status=503, origin="download", retry_after=1)
    r = requests.get(link, timeout=10)
    assert r.status_code == 503 and "<Code>SlowDown</Code>" in r.text and r.headers["Retry-After"] == "1"
    assert requests.get(link, timeout=10).status_code == 200


def test_fault_truncate_cuts_the_body_and_closes(sandbox, get):
    link = get(f"/projects/{sandbox.default_project_id}/assets/2", params={"download": "true"}).json()["link"]
    sandbox.inject("/blobs/*", truncate=1000, origin="download")
    parts = urlsplit(link)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", f"{parts.path}?{parts.query}")
        response = conn.getresponse()
        assert response.status == 200 and int(response.headers["Content-Length"]) > 1000
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert len(info.value.partial) == 1000
    finally:
        conn.close()
    assert len(requests.get(link, timeout=10).content) > 1000
    sandbox.inject("/projects", truncate=10)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        get("/projects")


def test_fault_count_consumed_in_order_and_clear_faults(sandbox, get):
    sandbox.inject("/projects", status=500, count=1)
    sandbox.inject("/projects", status=502, count=1)
    sandbox.inject("/projects", status=504, count=5)
    assert [get("/projects").status_code for _ in range(3)] == [500, 502, 504]
    assert [f.count for f in sandbox.faults] == [4]
    sandbox.clear_faults()
    assert sandbox.faults == [] and get("/projects").status_code == 200


def test_fault_bad_arguments_raise_value_error(sandbox):
    with pytest.raises(ValueError):
        sandbox.inject("/projects")  # does nothing
    with pytest.raises(ValueError):
        sandbox.inject("/projects", status=503, count=0)
    with pytest.raises(ValueError):
        sandbox.inject("/projects", status=503, origin="elsewhere")
    with pytest.raises(ValueError):
        sandbox.inject("/projects", redirect="http://x/", status=200)


def test_latency_applies_to_api_requests(sandbox, get):
    sandbox.latency = 0.3
    start = time.monotonic()
    assert get("/user/license").status_code == 200
    assert time.monotonic() - start >= 0.3
    sandbox.latency = 0.0
    start = time.monotonic()
    get("/user/license")
    assert time.monotonic() - start < 0.3


def test_reset_clears_faults_and_latency(sandbox, get):
    sandbox.inject("/projects", status=500, count=10)
    sandbox.latency = 0.2
    sandbox.reset()
    assert sandbox.latency == 0.0 and sandbox.faults == []
    assert get("/projects").status_code == 200
