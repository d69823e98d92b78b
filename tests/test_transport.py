"""Transport: retries as policy, timeouts, error mapping, where the token may go."""

from __future__ import annotations

import time

import pytest
import requests
from helpers import login_to

from metafold_jupyter.errors import APIError, TransportError


def calls(sb, path, method="GET"):
    return [r for r in sb.requests if r.path == path and r.method == method]


def test_two_503_with_retry_after_then_success(session, sandbox):
    sandbox.inject("/user/usage", status=503, count=2, retry_after=1)
    started = time.monotonic()
    assert "project" in session.get_json("/user/usage")
    assert time.monotonic() - started >= 1.9  # Retry-After honoured twice
    assert [r.status for r in calls(sandbox, "/user/usage")] == [503, 503, 200]


def test_429_then_success(session, sandbox):
    sandbox.inject("/user/quota", status=429, count=1, retry_after=0)
    assert session.get_json("/user/quota")
    assert [r.status for r in calls(sandbox, "/user/quota")] == [429, 200]


def test_dropped_connection_on_get_is_retried(session, sandbox):
    sandbox.inject("/user/license", drop=True, count=1)
    assert session.get_json("/user/license")["product"]
    assert len(calls(sandbox, "/user/license")) == 2


def test_html_502_then_success(session, sandbox):
    sandbox.inject("/projects", status=502, count=1, body="<html><head><title>502 Bad Gateway</title></head>"
                   "<body><h1>502 Bad Gateway</h1><hr>nginx</body></html>", content_type="text/html")
    assert isinstance(session.get_json("/projects"), list)


def test_html_502_exhausted_gives_the_page_title(session, sandbox):
    sandbox.inject("/projects", status=502, count=10, body="<html><head><title>502 Bad Gateway</title></head>"
                   "<body>nginx</body></html>", content_type="text/html")
    with pytest.raises(APIError) as info:
        session.get_json("/projects")
    err = info.value
    assert (err.status, err.method, err.message) == (502, "GET", "502 Bad Gateway")
    assert err.url == sandbox.url + "/projects"
    assert "502 Bad Gateway" in str(err) and "<html>" not in str(err)


def test_post_answered_500_is_sent_exactly_once(session, sandbox):
    sandbox.inject("/projects", method="POST", status=500, count=1)
    with pytest.raises(APIError) as info:
        session.request("POST", "/projects", json={"name": "once"})
    assert info.value.status == 500
    assert len(calls(sandbox, "/projects", "POST")) == 1
    assert "once" not in [p["name"] for p in session.get_json("/projects")]


def test_post_dropped_connection_is_not_replayed(session, sandbox):
    sandbox.inject("/projects", method="POST", drop=True, count=1)
    with pytest.raises(TransportError, match="closed the connection"):
        session.request("POST", "/projects", json={"name": "maybe"})
    assert len(calls(sandbox, "/projects", "POST")) == 1


def test_patch_answered_503_is_not_retried(session, sandbox):
    pid = sandbox.default_project_id
    sandbox.inject(f"/projects/{pid}", method="PATCH", status=503, count=1)
    with pytest.raises(APIError):
        session.request("PATCH", f"/projects/{pid}", json={"name": "renamed"})
    assert len(calls(sandbox, f"/projects/{pid}", "PATCH")) == 1


def test_server_that_never_answers_times_out_within_bound(sandbox):
    s = login_to(sandbox, timeout=(1.0, 0.5))
    sandbox.inject("/user/usage", delay=60, count=5)
    started = time.monotonic()
    with pytest.raises(TransportError, match="no answer within 0.5 s") as info:
        s.get_json("/user/usage")
    elapsed = time.monotonic() - started
    # one read retry: at most two read timeouts plus a short backoff
    assert elapsed < 2 * 0.5 + 1.5, elapsed
    assert info.value.status is None and info.value.method == "GET"


def test_connection_refused_is_a_transport_error(session):
    with pytest.raises(TransportError, match="connection refused"):
        session.request("GET", "http://127.0.0.1:9/nothing", timeout=(1, 1))


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (400, '{"errors": [{"field": "name", "msg": "Field is required"}]}', "name: Field is required"),
        (403, '{"msg": "Project quota exceeded"}', "Project quota exceeded"),
        (404, '{"code": 404, "name": "Not Found", "description": "Resource does not exist"}',
         "Resource does not exist"),
        (500, "Internal Server Error", "Internal Server Error"),
    ],
)
def test_error_shapes_become_api_error_messages(session, sandbox, status, body, message):
    ctype = "application/json" if body.startswith("{") else "text/plain"
    sandbox.inject("/projects", method="POST", status=status, body=body, content_type=ctype)
    with pytest.raises(APIError) as info:
        session.request("POST", "/projects", json={"name": "x"})
    assert (info.value.status, info.value.message) == (status, message)
    # str() is one line: what failed, then the hint (interface: "Errors")
    assert info.value.hint
    assert str(info.value) == f"POST /projects failed (HTTP {status}): {message} — {info.value.hint}"


def test_real_404_and_400_from_the_api(session, sandbox):
    with pytest.raises(APIError) as info:
        session.get_json("/projects/424242")
    assert info.value.status == 404 and info.value.message == "Resource does not exist"
    with pytest.raises(APIError) as info:
        session.request("POST", "/projects", json={})
    assert info.value.status == 400 and "name" in info.value.message


def test_token_goes_only_to_the_api_origin(session, sandbox):
    with pytest.raises(APIError):
        session.request("GET", sandbox.download_url + "/blobs/nothing")
    (rec,) = [r for r in sandbox.requests if r.origin == "download"]
    assert rec.authorization is None
    api = [r for r in sandbox.requests if r.origin == "api" and r.path != "/oauth/token"]
    assert all(r.authorization is None or r.authorization.startswith("Bearer ") for r in api)


def test_token_not_carried_across_a_cross_host_redirect(session, sandbox):
    sandbox.inject("/user/license", redirect=sandbox.download_url + "/elsewhere", count=1)
    with pytest.raises(APIError):
        session.get_json("/user/license")
    (rec,) = [r for r in sandbox.requests if r.origin == "download"]
    assert rec.path == "/elsewhere" and rec.authorization is None


def test_netrc_does_not_override_the_bearer_token(session, sandbox, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-password\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert session.get_json("/user/usage")
    last = calls(sandbox, "/user/usage")[-1]
    assert last.authorization.startswith("Bearer ")
    # and requests' own plain call would have used it: the environment is really set up
    r = requests.Request("GET", sandbox.url + "/user/usage")
    prepared = requests.Session().prepare_request(r)
    assert prepared.headers.get("Authorization", "").startswith("Basic ")


def test_keep_alive_one_connection_for_many_calls(sandbox):
    """The sandbox keeps HTTP/1.1 connections alive like the real API: 20 calls, one TCP connection."""
    import metafold_jupyter as mf

    s = mf.login(sandbox.client_id, sandbox.client_secret, auth_domain=sandbox.url, base_url=sandbox.url)
    assert s.get_json("/user/usage")  # the API calls' connection is open now
    before = sandbox.accepted_connections["api"]
    for _ in range(20):
        assert s.get_json("/user/usage")
    assert sandbox.accepted_connections["api"] == before  # 20 more calls, no new connection
    calls = [r for r in sandbox.requests if r.path == "/user/usage"]
    assert len(calls) == 21 and all(r.status == 200 for r in calls)


# -- issue 9, item 7: what the session still takes from the environment -----------------------------


def test_environment_ca_bundle_and_proxies_are_honoured_but_not_netrc(tmp_path, monkeypatch):
    from metafold_jupyter.config import Settings
    from metafold_jupyter.transport import build_http, environment_proxies

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example.invalid")
    http = build_http(Settings(base_url="https://api.metafold3d.com/"))
    assert http.trust_env is False  # so requests never reads ~/.netrc
    merged = http.merge_environment_settings("https://api.metafold3d.com/projects", {}, None, None, None)
    assert merged["verify"] == str(bundle)
    assert merged["proxies"]["https"] == "http://proxy.example.invalid:3128"
    assert environment_proxies("https://internal.example.invalid/x") == {}  # NO_PROXY
    assert environment_proxies("http://127.0.0.1:8000/oauth/token") == {}  # loopback never goes through one
    assert http.merge_environment_settings("https://x.example.invalid/", {}, None, False, None)["verify"] is False
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    assert http.merge_environment_settings("https://api.metafold3d.com/", {}, None, None, None)["verify"] == str(bundle)
    http.close()
