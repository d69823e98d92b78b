"""The shared pacing of concurrent calls: the throttle's rules, and the paced retry policy over
real HTTP (the sandbox answering 429)."""

from __future__ import annotations

import threading
import time

import pytest
from urllib3.util.retry import Retry

from metafold_jupyter.pacing import Cancelled, Throttle, current, paced
from metafold_jupyter.transport import API_RETRY


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_halves_once_per_pause_and_recovers_one_per_round():
    clock = FakeClock()
    t = Throttle(8, clock=clock)
    t.slow_down(2.0)
    t.slow_down(1.0)  # the same burst: extends nothing, cuts nothing
    t.slow_down(3.0)  # the same burst, a longer wait: extends the pause only
    assert (t.limit, t.cuts, t.slowdowns) == (4, 1, 3)
    assert t.paused_for() == pytest.approx(3.0)
    clock.now += 3.0
    t.slow_down(None)  # a new refusal after the pause: cut again, default pause
    assert (t.limit, t.cuts) == (2, 2) and t.paused_for() == pytest.approx(1.0)
    clock.now += 1.0
    for _ in range(2):  # a full round at limit 2 ...
        with t.slot():
            pass
    assert t.limit == 3  # ... earns one more
    for _ in range(3 + 4 + 5 + 6 + 7):
        with t.slot():
            pass
    assert t.limit == 8  # back to the ceiling, never above
    for _ in range(20):
        with t.slot():
            pass
    assert t.limit == 8 and t.floor == 1


def test_throttle_never_drops_below_its_floor():
    clock = FakeClock()
    t = Throttle(2, clock=clock)
    for _ in range(5):
        t.slow_down(0.5)
        clock.now += 1
    assert t.limit == 1


def test_throttle_holds_new_requests_while_paused_and_full():
    t = Throttle(2)
    entered = []

    def worker(i):
        with t.slot():
            entered.append((i, time.monotonic(), t.in_flight))
            time.sleep(0.2)

    t.slow_down(0.5)
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert len(entered) == 4
    entered.sort(key=lambda e: e[1])
    assert entered[0][1] - started >= 0.45  # nobody started during the pause
    assert entered[0][2] == 1 and entered[1][1] - entered[0][1] >= 0.15  # halved to 1: the next waited
    assert t.peak_in_flight == 2  # then it grew back by one


def test_throttle_cancel_wakes_waiters_at_once():
    t = Throttle(1)
    t.slow_down(60)
    errors = []

    def waiter():
        try:
            with t.slot():
                pass
        except Cancelled as exc:
            errors.append(exc)

    def sleeper():
        try:
            t.wait(60)
        except Cancelled as exc:
            errors.append(exc)

    threads = [threading.Thread(target=waiter), threading.Thread(target=sleeper)]
    for th in threads:
        th.start()
    time.sleep(0.2)
    started = time.monotonic()
    t.cancel()
    for th in threads:
        th.join(10)
    assert len(errors) == 2 and time.monotonic() - started < 5
    with pytest.raises(Cancelled):
        with t.slot():
            pass


def test_paced_keeps_the_policy_and_its_subclass():
    class Refusals(Retry):
        def is_retry(self, method, status_code, has_retry_after=False):
            return status_code == 418

    policy = paced(Refusals(total=3, status_forcelist={500}))
    assert isinstance(policy, Refusals) and policy.is_retry("GET", 418) and not policy.is_retry("GET", 500)
    assert isinstance(policy.new(), type(policy)) and paced(policy) is policy
    same = paced(API_RETRY)
    assert (same.total, same.status, same.status_forcelist, same.backoff_factor, same.retry_after_max) == (
        API_RETRY.total, API_RETRY.status, API_RETRY.status_forcelist, API_RETRY.backoff_factor,
        API_RETRY.retry_after_max)
    assert not isinstance(API_RETRY, type(same))  # the policy constant itself is left as it is


def test_paced_retry_reports_429_to_the_throttle_of_its_thread(session, sandbox):
    sandbox.inject("/user/quota", status=429, count=1, retry_after=1)
    t = Throttle(4)
    started = time.monotonic()
    with t.slot():
        assert current() is t
        session.get_json("/user/quota")
    assert current() is None
    assert (t.slowdowns, t.cuts, t.limit) == (1, 1, 2)
    assert time.monotonic() - started >= 0.9  # the Retry-After was honoured
    assert [r.status for r in sandbox.requests if r.path == "/user/quota"] == [429, 200]


def test_paced_retry_outside_a_throttle_is_the_plain_policy(session, sandbox):
    sandbox.inject("/user/quota", status=429, count=1, retry_after=0)
    other = Throttle(4)
    session.get_json("/user/quota")  # no throttle bound in this thread
    assert other.slowdowns == 0
    assert [r.status for r in sandbox.requests if r.path == "/user/quota"] == [429, 200]


@pytest.mark.parametrize("value", ["1.5", "soon"])
def test_paced_retry_survives_a_retry_after_urllib3_refuses(session, sandbox, value):
    """urllib3 raises InvalidHeader on ``Retry-After: 1.5`` (not an integer), failing the call;
    the paced policy reads it as 1.5 s, and an unreadable one as absent."""
    sandbox.inject("/user/quota", status=429, count=1, retry_after=value)
    t = Throttle(4)
    with t.slot():
        session.get_json("/user/quota")
    assert t.slowdowns == 1 and t.paused_for() == 0
    sandbox.inject("/user/quota", status=429, count=1, retry_after=value)
    session.get_json("/user/quota")  # and without a throttle
    assert [r.status for r in sandbox.requests if r.path == "/user/quota"] == [429, 200, 429, 200]
