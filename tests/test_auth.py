"""Token refresh: one exchange per token, refreshed ahead of expiry, single flight."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import login_to

from metafold_jupyter.auth import ClientCredentials, refresh_margin
from metafold_jupyter.errors import AuthenticationError, TransportError
from metafold_jupyter.transport import AUTH_RETRY


@pytest.fixture(scope="module")
def short_lived():
    """A sandbox whose tokens live 2 seconds."""
    from metafold_jupyter.sandbox import Sandbox

    with Sandbox(token_lifetime=2) as sb:
        yield sb


@pytest.fixture
def short(short_lived):
    short_lived.reset()
    yield short_lived


def test_refresh_margin_scales_with_lifetime():
    assert refresh_margin(86400) == 300
    assert refresh_margin(600) == 60
    assert refresh_margin(2) == pytest.approx(0.2)


def test_thousand_calls_one_exchange(session, sandbox):
    for _ in range(1000):
        session.get_json("/user/usage")
    assert sandbox.token_exchanges == 1


def test_short_lived_tokens_refreshed_ahead_not_per_call(short):
    s = login_to(short)
    calls, deadline = 0, time.monotonic() + 4.5
    while time.monotonic() < deadline:
        s.get_json("/user/usage")
        calls += 1
    statuses = [r.status for r in short.requests if r.path == "/user/usage"]
    assert calls > 50
    assert 2 <= short.token_exchanges <= 4  # about one per 1.8 s, not one per call
    assert 401 not in statuses  # refreshed before the API could reject it


def test_thirty_two_threads_on_expired_token_one_exchange(short):
    s = login_to(short)
    time.sleep(2.1)  # the token has expired
    before = short.token_exchanges
    barrier = threading.Barrier(32)
    errors = []

    def worker():
        barrier.wait()
        try:
            s.get_json("/user/usage")
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert errors == []
    assert short.token_exchanges - before == 1


def test_refresh_failure_with_valid_token_keeps_working(session, sandbox):
    creds = session._credentials
    real = time.time
    creds.clock = lambda: real() + 86400 - 100  # inside the 5-minute margin, not yet expired
    sandbox.inject("/oauth/token", status=503, count=10)
    assert session.get_json("/user/usage")
    assert session.get_json("/user/usage")  # no second exchange attempt right away
    # the login's exchange, then one refresh with its own retries, then a pause
    assert sandbox.token_exchanges == 1 + 1 + AUTH_RETRY.status
    sandbox.clear_faults()


def test_refresh_failure_without_valid_token_raises(session, sandbox):
    creds = session._credentials
    real = time.time
    creds.clock = lambda: real() + 90000  # past expiry
    sandbox.inject("/oauth/token", status=401, count=1)
    with pytest.raises(AuthenticationError):
        session.get_json("/user/usage")
    assert session.get_json("/user/usage")  # the lock was released; the next refresh works


def test_revoked_token_one_refresh_and_replay(session, sandbox):
    sandbox.revoke_tokens()
    before = sandbox.token_exchanges
    assert session.get_json("/user/usage")
    assert sandbox.token_exchanges - before == 1
    statuses = [r.status for r in sandbox.requests if r.path == "/user/usage"]
    assert statuses == [401, 200]


def test_persistent_401_replayed_only_once(session, sandbox):
    sandbox.inject("/user/usage", status=401, count=5)
    from metafold_jupyter.errors import APIError

    with pytest.raises(APIError) as info:
        session.get_json("/user/usage")
    assert info.value.status == 401
    assert [r.status for r in sandbox.requests if r.path == "/user/usage"] == [401, 401]


def test_token_exchange_retried_on_503_not_on_401(sandbox):
    sandbox.inject("/oauth/token", status=503, count=2, retry_after=0)
    login_to(sandbox)
    assert sandbox.token_exchanges == 3


def test_failed_refresh_releases_the_lock():
    calls = []

    def exchange():
        calls.append(1)
        if len(calls) == 1:
            raise TransportError("POST", "https://auth.example.com/oauth/token", "connection refused")
        return {"access_token": "tok", "expires_in": 3600}

    creds = ClientCredentials(exchange)
    with pytest.raises(TransportError):
        creds.token()
    assert creds.token() == "tok" and not creds._lock.locked()


def test_exchange_without_token_in_answer_is_an_error():
    creds = ClientCredentials(lambda: {"token_type": "Bearer"})
    with pytest.raises(AuthenticationError, match="has no access_token"):
        creds.token()


def test_expiry_counts_from_request_time():
    t = [1000.0]

    def slow_exchange():
        t[0] += 5  # the auth service took 5 s to answer
        return {"access_token": "tok", "expires_in": 100}

    creds = ClientCredentials(slow_exchange, clock=lambda: t[0])
    creds.token()
    assert creds.expires_at.timestamp() == 1100.0
