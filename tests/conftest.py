"""Shared fixtures: one sandbox server per test session, reset before every test."""

from __future__ import annotations

import os

import pytest
from helpers import login_to


@pytest.fixture(scope="session")
def sandbox_server():
    """A real sandbox on loopback (API + auth origin, and a download origin)."""
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(workflow_duration=1.0) as sb:
        yield sb


@pytest.fixture
def sandbox(sandbox_server):
    """The session's sandbox with its seeded data, faults and counters reset."""
    sandbox_server.reset()
    yield sandbox_server
    sandbox_server.reset()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch, tmp_path):
    """No METAFOLD_* variable leaks in, and no .env above the working directory is found."""
    for name in list(os.environ):
        if name.startswith("METAFOLD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(autouse=True)
def clean_session(monkeypatch, tmp_path):
    """Every test starts logged out, with its own user cache directory."""
    from metafold_jupyter import kernel_session

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    kernel_session.logout()
    yield
    kernel_session.logout()


@pytest.fixture
def session(sandbox):
    """A kernel-level session logged in to the shared sandbox."""
    return login_to(sandbox, project=sandbox.default_project_id)
