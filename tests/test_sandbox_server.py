"""The Sandbox object: lifecycle, clean shutdown, loopback policy, bulk data and the CLI."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from metafold_jupyter.sandbox import Sandbox

from helpers import token_of  # noqa: E402

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


def test_server_stop_leaves_no_threads_or_ports():
    before = set(threading.enumerate())
    sb = Sandbox().start()
    token = token_of(sb)
    api_port, download_port = port_of(sb.url), port_of(sb.download_url)
    # a keep-alive session that stays open
    session = requests.Session()
    assert session.get(sb.url + "/user/license", headers={"Authorization": f"Bearer {token}"}, timeout=5).ok
    # a raw connection that never sends a request
    idle = socket.create_connection(("127.0.0.1", api_port), timeout=5)
    # a request stuck in a long delay
    sb.inject("/user/usage", delay=120)
    stuck_errors = []

    def stuck():
        try:
            requests.get(sb.url + "/user/usage", headers={"Authorization": f"Bearer {token}"}, timeout=30)
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
    sb.stop()  # idempotent
    session.close()
    idle.close()
    with pytest.raises(RuntimeError):
        sb.start()


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


def test_cli_serves_and_stops_on_sigint():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "metafold_jupyter.sandbox", "--port", "0", "--workflow-duration", "1"],
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
        out = "".join(lines)
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
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_refuses_remote_host_without_flag():
    from metafold_jupyter.sandbox.__main__ import main

    assert main(["--host", "0.0.0.0"]) == 2
