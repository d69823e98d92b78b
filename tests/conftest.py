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


#: Answer shapes of the sandbox, by test ID: (answer_shape, date_style) as ``Sandbox`` takes them.
#: ``live`` is what the service and the official SDK do (RFC 1123 dates); ``reference`` answers like
#: the published OpenAPI reference (ISO 8601 dates, ``link`` on asset list items, no ``link`` in the
#: dispatch answer, ``{code, name, description}`` errors).
ANSWER_SHAPES = {
    "live": ("live", None),
    "live-iso8601": ("live", "iso8601"),
    "reference": ("reference", None),
}


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "answer_shapes(*ids): run each test that uses the sandbox once per answer shape "
        f"(ids from conftest.ANSWER_SHAPES: {', '.join(ANSWER_SHAPES)})",
    )


def pytest_generate_tests(metafunc):
    """Parametrise ``answer_shape`` (and so ``sandbox``) from the closest ``answer_shapes`` mark."""
    marker = metafunc.definition.get_closest_marker("answer_shapes")
    if marker is not None and "answer_shape" in metafunc.fixturenames:
        unknown = set(marker.args) - set(ANSWER_SHAPES)
        if unknown:
            raise ValueError(f"unknown answer shapes {sorted(unknown)}; known: {sorted(ANSWER_SHAPES)}")
        metafunc.parametrize("answer_shape", marker.args, indirect=True)


@pytest.fixture
def answer_shape(request):
    """The ID of the shape the sandbox answers in (``live`` unless the test is marked ``answer_shapes``)."""
    return getattr(request, "param", "live")


@pytest.fixture
def sandbox(sandbox_server, answer_shape):
    """The session's sandbox with its seeded data, faults and counters reset, answering in ``answer_shape``."""
    sandbox_server.reset()
    sandbox_server.shape.set(*ANSWER_SHAPES[answer_shape])
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
