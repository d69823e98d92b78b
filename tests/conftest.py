"""Shared fixtures: one sandbox server per test session, reset before every test."""

from __future__ import annotations

import os

import pytest

from metafold_jupyter.sandbox import Sandbox


@pytest.fixture(scope="session")
def sandbox_server():
    """A real sandbox on loopback (API + auth origin, and a download origin)."""
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
