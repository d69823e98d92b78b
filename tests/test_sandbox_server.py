"""The Sandbox object and its HTTP servers: lifecycle, clean shutdown, keep-alive, TLS, Host
check, upload limits, loopback policy, bulk data and the CLI."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from helpers import token_of  # noqa: E402
from requests.adapters import HTTPAdapter

from metafold_jupyter.sandbox import Sandbox
from metafold_jupyter.sandbox.middleware import HostPolicy

pytestmark = pytest.mark.timeout(60)


def port_of(url):
    return int(url.rsplit(":", 1)[1])


def refuses(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_server_urls_and_identity():
    sb = Sandbox()
    with pytest.raises(RuntimeError):
        sb.url  # noqa: B018 - not started yet
    with sb:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.url)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sb.download_url)
        assert sb.download_url != sb.url
        assert sb.token_url == sb.url + "/oauth/token"
        assert sb.start() is sb  # starting twice is harmless
        env = sb.env()
        assert env["METAFOLD_AUTH_DOMAIN"] == env["METAFOLD_BASE_URL"] == sb.url
        assert env["METAFOLD_CLIENT_ID"] == sb.client_id and env["METAFOLD_PROJECT_ID"] == sb.default_project_id


def verify_of(sb):
    """``verify=`` for requests to this sandbox: its throwaway CA when it serves TLS."""
    return str(sb.ca_bundle) if sb.ca_bundle else True


def tls_token_of(sb) -> str:
    r = requests.post(sb.token_url, json={
        "grant_type": "client_credentials", "client_id": sb.client_id,
        "client_secret": sb.client_secret, "audience": sb.audience}, timeout=10, verify=verify_of(sb))
    r.raise_for_status()
    return r.json()["access_token"]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_server_stop_leaves_no_threads_or_ports(tls, tmp_path):
    before = set(threading.enumerate())
    sb = Sandbox(tls=tls).start()
    verify = True
    if tls:  # stop() deletes the sandbox's files, the CA bundle with them
        verify = str(tmp_path / "ca.pem")
        Path(verify).write_bytes(sb.ca_bundle.read_bytes())
    token = tls_token_of(sb)
    api_port, download_port = port_of(sb.url), port_of(sb.download_url)
    # a keep-alive session that stays open
    session = requests.Session()
    assert session.get(sb.url + "/user/license", headers={"Authorization": f"Bearer {token}"}, timeout=5,
                       verify=verify).ok
    # a raw connection that never sends a request (nor, with TLS, a handshake)
    idle = socket.create_connection(("127.0.0.1", api_port), timeout=5)
    # a request stuck in a long delay
    sb.inject("/user/usage", delay=120)
    stuck_errors = []

    def stuck():
        try:
            requests.get(sb.url + "/user/usage", headers={"Authorization": f"Bearer {token}"}, timeout=30,
                         verify=verify)
        except requests.RequestException as exc:
            stuck_errors.append(exc)

    caller = threading.Thread(target=stuck)
    caller.start()
    deadline = time.monotonic() + 5
    while not any(r.path == "/user/usage" for r in sb.requests) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert any(t.name.startswith("metafold-sandbox") for t in threading.enumerate())
    start = time.monotonic()
    sb.stop()
    assert time.monotonic() - start < 3
    caller.join(5)
    assert not caller.is_alive() and len(stuck_errors) == 1
    leftover = [t for t in set(threading.enumerate()) - before if t is not caller and t.is_alive()]
    assert leftover == []
    assert refuses(api_port) and refuses(download_port)
    # the kept-alive connection was closed by the server: the next request on it fails
    with pytest.raises(requests.ConnectionError):
        session.get(sb.url + "/user/license", timeout=5, verify=verify)
    idle.settimeout(5)
    assert idle.recv(1) == b""  # closed, not left hanging
    sb.stop()  # idempotent
    session.close()
    idle.close()
    with pytest.raises(RuntimeError):
        sb.start()


def test_server_threads_are_daemons():
    """A kernel never stops its embedded sandbox: its threads must not hold up interpreter exit."""
    before = set(threading.enumerate())
    with Sandbox():
        started = set(threading.enumerate()) - before
        assert len(started) >= 2 and all(t.daemon for t in started)


def test_server_stop_removes_temp_files():
    sb = Sandbox(bulk_asset_mib=1).start()
    blob_dir = sb.store.blob_dir
    assert any(blob_dir.iterdir())
    sb.stop()
    assert not blob_dir.exists()


def test_server_refuses_non_loopback_host():
    with pytest.raises(ValueError, match="allow_remote"):
        Sandbox(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(host="192.0.2.1")
    Sandbox(host="localhost").stop()
    Sandbox(host="::1").stop()


def test_server_allow_remote_serves_on_all_interfaces():
    with Sandbox(host="0.0.0.0", allow_remote=True) as sb:
        assert sb.url.startswith("http://127.0.0.1:")
        assert requests.get(sb.url + "/user/license", timeout=5).status_code == 401


def test_server_busy_port_is_os_error(sandbox):
    with pytest.raises(OSError):
        Sandbox(port=port_of(sandbox.url)).start()


def test_server_bulk_projects_listing_is_fast():
    with Sandbox(bulk_projects=5000) as sb:
        headers = {"Authorization": f"Bearer {token_of(sb)}"}
        r = requests.get(sb.url + "/projects", headers=headers, timeout=30)
        projects = r.json()
        assert len(projects) == 5010
        assert projects[0]["name"] == "Bulk project 05000"
        assert len({p["created"][8:16] for p in projects}) >= 12  # spread over many months
        timings = []
        for _ in range(3):
            start = time.perf_counter()
            requests.get(sb.url + "/projects", headers=headers, timeout=30).raise_for_status()
            timings.append(time.perf_counter() - start)
        assert min(timings) < 0.25, timings  # client round trip; well under 100 ms on the server
        q = requests.get(sb.url + "/projects", params={"q": "name:*04999*"}, headers=headers, timeout=30)
        assert [p["name"] for p in q.json()] == ["Bulk project 04999"]
        assert requests.get(sb.url + "/user/quota", headers=headers, timeout=10).json()["project"] > 0


def test_server_bulk_projects_serialize_quickly_in_process():
    from werkzeug.test import Client

    sb = Sandbox(bulk_projects=5000)
    try:
        client = Client(sb.app)
        token = client.post("/oauth/token", json={"grant_type": "client_credentials", "client_id": sb.client_id,
                            "client_secret": sb.client_secret, "audience": sb.audience}).get_json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        client.get("/projects", headers=headers)  # warm the per-project JSON cache
        start = time.perf_counter()
        r = client.get("/projects", headers=headers)
        elapsed = time.perf_counter() - start
        assert r.status_code == 200 and len(r.get_json()) == 5010
        assert elapsed < 0.1, elapsed
    finally:
        sb.stop()


def test_server_bulk_asset_downloads_with_right_checksum(tmp_path):
    with Sandbox(bulk_asset_mib=8, seed=False) as sb:
        headers = {"Authorization": f"Bearer {token_of(sb)}"}
        pid = sb.default_project_id
        (asset,) = requests.get(f"{sb.url}/projects/{pid}/assets", headers=headers, timeout=10).json()
        assert asset["filename"] == "bulk.bin" and asset["size"] == 8 << 20
        link = requests.get(f"{sb.url}/projects/{pid}/assets/{asset['id']}", params={"download": "true"},
                            headers=headers, timeout=10).json()["link"]
        digest = hashlib.sha256()
        with requests.get(link, stream=True, timeout=30) as r:
            assert int(r.headers["Content-Length"]) == 8 << 20
            for chunk in r.iter_content(1 << 20):
                digest.update(chunk)
        assert asset["checksum"] == "sha256:" + digest.hexdigest()
        sb.reset()  # the bulk file survives a reset
        (again,) = requests.get(f"{sb.url}/projects/{pid}/assets", headers=headers, timeout=10).json()
        assert again["checksum"] == asset["checksum"]


def test_server_bulk_asset_served_from_disk_in_blocks():
    from werkzeug.test import EnvironBuilder

    from metafold_jupyter.sandbox.downloads import DownloadApp

    sb = Sandbox(bulk_asset_mib=4, seed=False)
    try:
        (asset,) = sb.store.project_assets(f"{sb.client_id}@clients", sb.default_project_id)
        link = sb.signer.link(asset)
        path_query = link.split("127.0.0.1:0", 1)[1]
        environ = EnvironBuilder(path=path_query.split("?")[0], query_string=path_query.split("?")[1]).get_environ()
        captured = {}
        body = DownloadApp(sb.store, sb.signer)(environ, lambda status, headers: captured.update(status=status))
        sizes = [len(block) for block in body]
        body.close()
        assert captured["status"].startswith("200")
        assert sum(sizes) == 4 << 20 and max(sizes) == 1 << 20  # streamed in 1 MiB blocks
    finally:
        sb.stop()


def test_server_seed_false_has_only_empty_default_project():
    with Sandbox(seed=False) as sb:
        headers = {"Authorization": f"Bearer {token_of(sb)}"}
        projects = requests.get(sb.url + "/projects", headers=headers, timeout=10).json()
        assert [p["id"] for p in projects] == [sb.default_project_id]
        assert requests.get(f"{sb.url}/projects/{sb.default_project_id}/assets", headers=headers,
                            timeout=10).json() == []


@contextlib.contextmanager
def cli_sandbox(*flags: str):
    """``python -m metafold_jupyter.sandbox --port 0 FLAGS``: the process and what it printed up to
    "Press Ctrl-C"; killed at the end if the test did not stop it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metafold_jupyter.sandbox", "--port", "0", *flags],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        yield proc, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_serves_and_stops_on_sigint():
    with cli_sandbox("--workflow-duration", "1") as (proc, out):
        url = re.search(r"running at (http://127\.0\.0\.1:\d+)", out).group(1)
        assert "sandbox-client-id" in out and "sandbox-secret-not-for-production" in out
        assert f"METAFOLD_AUTH_DOMAIN={url}" in out and f"METAFOLD_BASE_URL={url}" in out
        assert "METAFOLD_CLIENT_ID=sandbox-client-id" in out
        assert "METAFOLD_CLIENT_SECRET=sandbox-secret-not-for-production" in out
        assert re.search(r"download origin:\s+http://127\.0\.0\.1:\d+", out)
        token = requests.post(url + "/oauth/token", json={
            "grant_type": "client_credentials", "client_id": "sandbox-client-id",
            "client_secret": "sandbox-secret-not-for-production",
            "audience": "https://api.metafold3d.com"}, timeout=10).json()["access_token"]
        r = requests.get(url + "/user/license", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert r.status_code == 200 and r.json()["expired"] is False
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "stopped" in rest and "Traceback" not in err
        assert refuses(port_of(url))


def test_cli_refuses_remote_host_without_flag():
    from metafold_jupyter.sandbox.__main__ import main

    assert main(["--host", "0.0.0.0"]) == 2


# ---------------------------------------------------------------- keep-alive

def test_server_keep_alive_reuses_one_connection_per_origin(sandbox):
    """One requests.Session: token, reads, an upload, a download: one TCP connection per origin."""
    before = sandbox.accepted_connections
    http = requests.Session()
    token = http.post(sandbox.token_url, json={
        "grant_type": "client_credentials", "client_id": sandbox.client_id,
        "client_secret": sandbox.client_secret, "audience": sandbox.audience}, timeout=10).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    pid = sandbox.default_project_id
    answers = [http.get(f"{sandbox.url}/projects", timeout=10) for _ in range(5)]
    answers.append(http.get(f"{sandbox.url}/projects/424242", timeout=10))  # an error answer keeps it too
    answers.append(http.post(f"{sandbox.url}/projects/{pid}/assets", files={"file": ("k.stl", b"solid k\n" * 500)},
                             timeout=10))
    links = [http.get(f"{sandbox.url}/projects/{pid}/assets/2", params={"download": "true"}, timeout=10)
             .json()["link"] for _ in range(3)]
    answers += [http.get(link, timeout=10) for link in links]
    assert [r.status_code for r in answers] == [200] * 5 + [404, 201] + [200] * 3
    assert all(r.headers.get("Connection", "").lower() != "close" for r in answers)
    after = sandbox.accepted_connections
    assert after["api"] - before["api"] == 1 and after["download"] - before["download"] == 1
    http.close()


def test_server_serves_many_requests_at_once_and_idle_connections_pin_no_thread():
    """40 idle keep-alive clients, then 24 requests held in injected delays: all 24 are in flight at
    once (a 16-worker fan-out plus 4 polling workflows plus delays never wait for a free thread)."""
    with Sandbox(seed=False) as sb:
        idle = []
        for _ in range(40):
            s = requests.Session()
            assert s.get(sb.url + "/user/license", timeout=10).status_code == 401
            idle.append(s)
        assert sb.accepted_connections["api"] == 40
        sb.inject("/user/usage", delay=60, count=24)
        pool = ThreadPoolExecutor(24)
        futures = [pool.submit(requests.get, sb.url + "/user/usage", timeout=30) for _ in range(24)]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            held = [r for r in sb.requests if r.path == "/user/usage" and r.status is None]
            if len(held) == 24:
                break
            time.sleep(0.05)
        assert len(held) == 24
        # and a new request is still answered while all 24 are held
        assert idle[0].get(sb.url + "/user/license", timeout=10).status_code == 401
    assert all(isinstance(f.exception(10), requests.ConnectionError) for f in futures)  # dropped at stop
    pool.shutdown()
    for s in idle:
        s.close()


def test_server_fan_out_of_16_workers_shares_16_connections(sandbox):
    """16 threads over one requests.Session (pool of 16) with latency: no more than 16 connections."""
    sandbox.latency = 0.02
    http = requests.Session()
    http.mount("http://", HTTPAdapter(pool_connections=2, pool_maxsize=16))
    http.headers["Authorization"] = f"Bearer {token_of(sandbox)}"
    before = sandbox.accepted_connections["api"]
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda _: http.get(sandbox.url + "/user/quota", timeout=30).status_code, range(160)))
    assert codes == [200] * 160
    assert 1 <= sandbox.accepted_connections["api"] - before <= 16
    http.close()


def test_server_fault_drop_on_a_kept_alive_connection_then_reconnects(sandbox):
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {token_of(sandbox)}"
    before = sandbox.accepted_connections["api"]
    assert http.get(sandbox.url + "/user/license", timeout=10).ok
    sandbox.inject("/user/license", drop=True)
    with pytest.raises(requests.ConnectionError):
        http.get(sandbox.url + "/user/license", timeout=10)
    assert http.get(sandbox.url + "/user/license", timeout=10).ok
    assert sandbox.accepted_connections["api"] - before == 2
    http.close()


def test_server_unread_request_body_is_skipped_in_blocks(sandbox):
    """A 401 before the body is read: the body is read and dropped, the connection stays usable."""
    http = requests.Session()
    before = sandbox.accepted_connections["api"]
    r = http.post(f"{sandbox.url}/projects/{sandbox.default_project_id}/assets", data=b"x" * (8 << 20), timeout=30)
    assert r.status_code == 401
    assert http.get(sandbox.url + "/user/license", timeout=10).status_code == 401
    chunked = http.post(sandbox.url + "/user/license", data=(b"y" * 1000 for _ in range(50)), timeout=30)
    assert chunked.status_code == 405 and chunked.request.headers["Transfer-Encoding"] == "chunked"
    assert http.get(sandbox.url + "/user/license", timeout=10).status_code == 401
    assert sandbox.accepted_connections["api"] - before == 1
    http.close()


# ----------------------------------------------------------------------- TLS

def test_server_tls_serves_both_origins_with_a_throwaway_ca(monkeypatch):
    with Sandbox(tls=True) as sb:
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", sb.url)
        assert re.fullmatch(r"https://127\.0\.0\.1:\d+", sb.download_url)
        assert sb.ca_bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert sb.env()["METAFOLD_BASE_URL"] == sb.url
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(sb.url + "/user/license", timeout=10)  # not trusted without the CA
        # (requests lets REQUESTS_CA_BUNDLE override Session.verify, so set that, as a user would)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(sb.ca_bundle))
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {tls_token_of(sb)}"
        pid = sb.default_project_id
        (asset,) = [a for a in http.get(f"{sb.url}/projects/{pid}/assets", timeout=10).json()
                    if a["filename"] == "cube.stl"]
        link = http.get(f"{sb.url}/projects/{pid}/assets/{asset['id']}", params={"download": "true"},
                        timeout=10).json()["link"]
        assert link.startswith(sb.download_url + "/blobs/")
        body = http.get(link, timeout=10).content
        assert asset["checksum"] == "sha256:" + hashlib.sha256(body).hexdigest()
        for _ in range(3):
            assert http.get(sb.url + "/user/license", timeout=10).ok
        # the refused handshake, the token (a call of its own), then one kept-alive connection per origin
        assert sb.accepted_connections == {"api": 3, "download": 1}
        http.close()
        # a status link of a dispatched workflow is https too
        r = requests.post(f"{sb.url}/projects/{pid}/workflows", json={"definition": "jobs:\n  a:\n    type: x/y\n"},
                          headers={"Authorization": f"Bearer {tls_token_of(sb)}"}, verify=str(sb.ca_bundle),
                          timeout=10)
        assert r.status_code == 202 and r.json()["link"].startswith(sb.url + "/projects/")


def test_server_tls_answers_plain_http_with_400():
    with Sandbox(tls=True) as sb:
        r = requests.get(sb.url.replace("https://", "http://") + "/user/license", timeout=10)
        assert r.status_code == 400 and "only speaks HTTPS" in r.text


def test_server_tls_client_stuck_before_its_handshake_does_not_stall_others():
    """The handshake runs on the worker serving that connection, not on the acceptor
    (cheroot's builtin adapter handshakes in the acceptor: cherrypy/cheroot#748)."""
    with Sandbox(tls=True, seed=False) as sb:
        silent = [socket.create_connection(("127.0.0.1", port_of(sb.url)), timeout=5) for _ in range(3)]
        garbage = socket.create_connection(("127.0.0.1", port_of(sb.url)), timeout=5)
        garbage.sendall(b"\x16\x03\x01\x00")  # half a TLS record header, then nothing
        for _ in range(3):
            r = requests.get(sb.url + "/user/license", timeout=5, verify=str(sb.ca_bundle))
            assert r.status_code == 401
        for sock in [*silent, garbage]:
            sock.close()


def test_server_tls_needs_trustme(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_trustme(name, *args, **kwargs):
        if name == "trustme":
            raise ImportError("No module named 'trustme'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_trustme)
    with pytest.raises(ImportError, match=r"metafold-jupyter\[tls\]"):
        Sandbox(tls=True)


# ---------------------------------------------------------------- Host check

@pytest.mark.parametrize("host, allowed", [
    ("127.0.0.1:8123", True), ("localhost:8123", True), ("LOCALHOST:8123", True), ("[::1]:8123", True),
    ("127.0.0.2:8123", True), ("127.0.0.1:8124", False), ("127.0.0.1", False), ("evil.example:8123", False),
    ("evil.example", False), ("localhost.:8123", False), ("192.0.2.1:8123", False), ("::1:8123", False),
    ("[::1]x:8123", False), ("127.0.0.1:81x", False), ("127.0.0.1:\u0668\u0661\u0662\u0663", False), ("", False),
    (None, False),
    ("sandbox.invalid:8123", False), ("127.0.0.1.nip.io:8123", False),
])
def test_host_policy_loopback_names_on_own_port(host, allowed):
    assert HostPolicy(8123, "http").allows(host) is allowed


def test_host_policy_default_ports_and_remote_hosts():
    assert HostPolicy(443, "https").allows("localhost") and not HostPolicy(443, "http").allows("localhost")
    assert HostPolicy(80, "http").allows("127.0.0.1")
    named = HostPolicy(8123, "http", remote_host="lab-box.example")
    assert named.allows("lab-box.example:8123") and named.allows("127.0.0.1:8123")
    assert not named.allows("192.0.2.1:8123") and not named.allows("evil.example:8123")
    wildcard = HostPolicy(8123, "http", remote_host="0.0.0.0")
    assert wildcard.allows("192.0.2.1:8123") and wildcard.allows("[2001:db8::1]:8123")
    assert wildcard.allows(f"{socket.gethostname()}:8123") and not wildcard.allows("evil.example:8123")


def test_server_refuses_a_foreign_host_header_with_421_on_both_origins(sandbox):
    token = token_of(sandbox)
    headers = {"Authorization": f"Bearer {token}"}
    api_port = port_of(sandbox.url)
    for host in ("evil.example", f"evil.example:{api_port}", f"127.0.0.1:{api_port + 1}"):
        r = requests.get(sandbox.url + "/user/license", headers={**headers, "Host": host}, timeout=10)
        assert r.status_code == 421
        assert r.json()["code"] == 421 and "DNS rebinding" in r.json()["description"]
    ok = requests.get(sandbox.url + "/user/license", headers={**headers, "Host": f"localhost:{api_port}"}, timeout=10)
    assert ok.status_code == 200
    # the token endpoint too: a page re-pointed at the sandbox cannot get a token
    r = requests.post(sandbox.token_url, headers={"Host": f"evil.example:{api_port}"}, timeout=10,
                      json={"grant_type": "client_credentials", "client_id": sandbox.client_id,
                            "client_secret": sandbox.client_secret, "audience": sandbox.audience})
    assert r.status_code == 421 and "access_token" not in r.text
    link = requests.get(f"{sandbox.url}/projects/{sandbox.default_project_id}/assets/2", params={"download": "true"},
                        headers=headers, timeout=10).json()["link"]
    r = requests.get(link, headers={"Host": f"evil.example:{port_of(link.split('/blobs/')[0])}"}, timeout=10)
    assert r.status_code == 421 and "<Code>MisdirectedRequest</Code>" in r.text
    assert requests.get(link, timeout=10).status_code == 200
    refused = [(r.origin, r.path) for r in sandbox.requests if r.status == 421]
    assert refused == [("api", "/user/license")] * 3 + [("api", "/oauth/token"), ("download", refused[-1][1])]
    assert len(sandbox.issued_tokens) == 1


def test_server_allow_remote_answers_its_configured_host():
    with Sandbox(host="0.0.0.0", allow_remote=True) as sb:
        port = port_of(sb.url)
        for host in (f"{socket.gethostname()}:{port}", f"192.0.2.1:{port}", f"127.0.0.1:{port}"):
            assert requests.get(sb.url + "/user/license", headers={"Host": host}, timeout=5).status_code == 401
        assert requests.get(sb.url + "/user/license", headers={"Host": f"evil.example:{port}"},
                            timeout=5).status_code == 421


def _ipv6_loopback_works():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_works(), reason="no IPv6 loopback on this machine")
def test_server_ipv6_loopback_serves_with_keep_alive():
    with Sandbox(host="::1") as sb:
        assert re.fullmatch(r"http://\[::1\]:\d+", sb.url)
        http = requests.Session()
        token = http.post(sb.token_url, json={
            "grant_type": "client_credentials", "client_id": sb.client_id,
            "client_secret": sb.client_secret, "audience": sb.audience}, timeout=10).json()["access_token"]
        assert http.get(sb.url + "/user/license", headers={"Authorization": f"Bearer {token}"}, timeout=10).ok
        assert sb.accepted_connections["api"] == 1
        http.close()


# -------------------------------------------------------------------- uploads

def _upload(sb, token, name, payload, **kwargs):
    return requests.post(f"{sb.url}/projects/{sb.default_project_id}/assets", files={"file": (name, payload)},
                         headers={"Authorization": f"Bearer {token}"}, timeout=30, **kwargs)


def _blob_names(sb):
    return sorted(p.name for p in sb.store.blob_dir.iterdir())


def _multipart(filename: str, payload: bytes) -> bytes:
    """A multipart body with the filename as raw UTF-8 (requests would percent-encode some characters)."""
    return (b'--B\r\nContent-Disposition: form-data; name="file"; filename="' + filename.encode() + b'"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--B--\r\n")


@pytest.mark.parametrize("name, msg", [
    ("..", "Invalid filename '..'"), (".", "Invalid filename '.'"), ("dir/..", "Invalid filename '..'"),
    ("a\x00b.stl", "control characters"), ("tab\there.stl", "control characters"), ("bell\x07.stl", "control characters"),
    ("del\x7f.stl", "control characters"), ("c1\x85.stl", "control characters"), ("esc\x1b[31m.stl", "control characters"),
    ("x" * 252 + ".stl", "longer than 255 bytes"), ("   ", "no filename"), ("", "no filename"),
])
def test_upload_refuses_names_no_client_could_use_with_400(sandbox, name, msg):
    token = token_of(sandbox)
    blobs = _blob_names(sandbox)
    http = requests.Session()
    before = sandbox.accepted_connections["api"]
    r = http.post(f"{sandbox.url}/projects/{sandbox.default_project_id}/assets", data=_multipart(name, b"solid\n" * 100),
                  headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=B"},
                  timeout=30)
    assert r.status_code == 400
    (error,) = r.json()["errors"]
    assert error["field"] == "file" and msg in error["msg"]
    assert _blob_names(sandbox) == blobs  # nothing stored, no incoming file left
    assert http.get(sandbox.url + "/user/license", timeout=10).status_code == 401  # same connection, still usable
    assert sandbox.accepted_connections["api"] - before == 1
    http.close()


def test_upload_keeps_the_last_path_component_of_a_name(sandbox):
    r = _upload(sandbox, token_of(sandbox), "parts/../bracket-v2.stl", b"solid b\n")
    assert r.status_code == 201 and r.json()["filename"] == "bracket-v2.stl"
    r = _upload(sandbox, token_of(sandbox), "münster – ø.stl", b"solid u\n")
    assert r.status_code == 201 and r.json()["filename"] == "münster – ø.stl"


def test_upload_size_limit_answers_413_and_keeps_nothing():
    with Sandbox(seed=False, max_upload_mib=1) as sb:
        token = token_of(sb)
        exact = _upload(sb, token, "exact.bin", b"e" * (1 << 20))
        assert exact.status_code == 201 and exact.json()["size"] == 1 << 20
        blobs = _blob_names(sb)
        over = _upload(sb, token, "over.bin", b"o" * ((1 << 20) + 1))  # declared length within the framing slack
        assert over.status_code == 413
        assert over.json() == {"code": 413, "name": "Request Entity Too Large",
                               "description": "The upload is larger than this sandbox's limit of 1 MiB"}
        big = _upload(sb, token, "big.bin", b"b" * (16 << 20))  # refused on its declared length
        assert big.status_code == 413

        def chunked():  # no Content-Length: refused while streaming
            yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="chunked.bin"\r\n\r\n'
            for _ in range(4):
                yield b"c" * (1 << 20)
            yield b"\r\n--B--\r\n"

        r = requests.post(f"{sb.url}/projects/{sb.default_project_id}/assets", data=chunked(), timeout=30,
                          headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=B"})
        assert r.status_code == 413
        assert _blob_names(sb) == blobs
        assert [a["filename"] for a in requests.get(f"{sb.url}/projects/{sb.default_project_id}/assets",
                headers={"Authorization": f"Bearer {token}"}, timeout=10).json()] == ["exact.bin"]


def test_upload_streams_into_one_file_on_disk(sandbox, tmp_path):
    """While an upload is half sent, the process has exactly one new file open: the store's incoming
    file, already holding what arrived (werkzeug's parser would spool to a temporary file first)."""
    token = token_of(sandbox)
    proc_fd = Path("/proc/self/fd")
    if not proc_fd.is_dir():
        pytest.skip("needs /proc")

    def open_files():
        found = set()
        for fd in proc_fd.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
                found.add(target)
        return found

    before = open_files()
    halfway = threading.Event()
    resume = threading.Event()
    seen = {}

    def body():
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="streamed.bin"\r\n\r\n'
        for i in range(8):
            if i == 4:
                halfway.set()
                resume.wait(20)
            yield bytes([i]) * (1 << 20)
        yield b"\r\n--B--\r\n"

    def watch():
        halfway.wait(20)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            new = open_files() - before
            incoming = [f for f in new if "incoming-" in f and os.path.exists(f) and os.path.getsize(f) >= 3 << 20]
            if incoming:
                seen["new"], seen["incoming"] = new, incoming
                break
            time.sleep(0.02)
        resume.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    r = requests.post(f"{sandbox.url}/projects/{sandbox.default_project_id}/assets", data=body(), timeout=30,
                      headers={"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=B"})
    watcher.join(30)
    assert r.status_code == 201 and r.json()["size"] == 8 << 20
    assert len(seen["incoming"]) == 1 and seen["new"] == set(seen["incoming"])
    assert Path(seen["incoming"][0]).parent == sandbox.store.blob_dir
    assert not any(p.name.startswith("incoming-") for p in sandbox.store.blob_dir.iterdir())  # renamed into place


def test_upload_refused_for_a_taken_name_before_any_byte_is_stored(sandbox):
    token = token_of(sandbox)
    blobs = _blob_names(sandbox)
    r = _upload(sandbox, token, "cube.stl", b"x" * (3 << 20))
    assert r.status_code == 400 and "already exists" in r.json()["errors"][0]["msg"]
    assert _blob_names(sandbox) == blobs


def test_cli_tls_prints_the_ca_bundle_and_serves_https():
    with cli_sandbox("--tls", "--max-upload-mib", "0.5") as (proc, out):
        url = re.search(r"running at (https://127\.0\.0\.1:\d+)", out).group(1)
        bundle = re.search(r"export REQUESTS_CA_BUNDLE=(\S+)", out).group(1)
        assert Path(bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert f'auth_domain="{url.removeprefix("https://")}", base_url="{url}/"' in out
        token = requests.post(url + "/oauth/token", verify=bundle, timeout=10, json={
            "grant_type": "client_credentials", "client_id": "sandbox-client-id",
            "client_secret": "sandbox-secret-not-for-production",
            "audience": url + "/"}).json()["access_token"]
        r = requests.post(f"{url}/projects/3/assets", files={"file": ("big.bin", b"x" * (600 << 10))},
                          headers={"Authorization": f"Bearer {token}"}, verify=bundle, timeout=10)
        assert r.status_code == 413 and "0.5 MiB" in r.json()["description"]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "Traceback" not in err
        assert not Path(bundle).exists()  # the throwaway CA is gone with the sandbox
