"""Benchmark of the sandbox's HTTP server: what keep-alive buys (issues #10 and #13).

    .venv/bin/python tests/benchmarks/bench_server.py [--calls N] [--rounds R] [--no-tls]

Prints, measured side by side in one run against sandboxes in other processes:
- requests/s over one kept-alive connection vs a new connection per request
  (``Connection: close``), over HTTP and over HTTPS (where every new connection
  costs a TLS handshake): 1 / the median time of one request, alternating blocks
  of requests between the two (per-request medians shrug off the stalls a busy
  2-core machine adds);
- the same with 16 threads sharing one ``requests.Session`` (a fan-out): requests
  per second of whole rounds, ratio of medians;
- the number of TCP connections each kept-alive contestant opened (client-side count).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import requests
import urllib3.connection
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SandboxProcess, report, sandbox_process, side_by_side  # noqa: E402

_WORKERS = 16


def _client(sb: SandboxProcess) -> tuple[requests.Session, str]:
    http = requests.Session()
    http.mount(sb.url.split(":", 1)[0] + "://", HTTPAdapter(pool_maxsize=_WORKERS))
    http.verify = sb.ca_bundle or True
    token = http.post(sb.url + "/oauth/token", verify=http.verify, timeout=10, json={
        "grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret,
        "audience": "https://api.metafold3d.com"}).json()["access_token"]
    http.headers["Authorization"] = f"Bearer {token}"
    return http, sb.url + "/user/usage"


_connects = itertools.count()


@contextmanager
def _counting_connects() -> Iterator[None]:
    """Count TCP connects urllib3 makes (its pools reuse a connection object across reconnects,
    so their own counters do not tell)."""
    original = urllib3.connection.HTTPConnection._new_conn

    def counted(self: urllib3.connection.HTTPConnection) -> object:
        next(_connects)
        return original(self)

    urllib3.connection.HTTPConnection._new_conn = counted  # type: ignore[method-assign]
    try:
        yield
    finally:
        urllib3.connection.HTTPConnection._new_conn = original  # type: ignore[method-assign]


def _connections() -> int:
    """TCP connects so far (the counter's next value minus the one this call takes)."""
    return next(_connects)


def _measure(sb: SandboxProcess, calls: int, rounds: int) -> dict[str, float]:
    http, url = _client(sb)
    verify = http.verify  # passed per call: REQUESTS_CA_BUNDLE would override Session.verify
    close = {"Connection": "close"}

    latencies: dict[str, list[float]] = {"keep-alive": [], "new connection": []}

    def serial(headers: dict[str, str], name: str) -> Callable[[], None]:
        def run() -> None:
            times = latencies[name]
            for _ in range(calls):
                started = time.perf_counter()
                http.get(url, headers=headers, verify=verify, timeout=10).raise_for_status()
                times.append(time.perf_counter() - started)
        return run

    def fan_out(headers: dict[str, str]) -> Callable[[], None]:
        def one(_: int) -> None:
            http.get(url, headers=headers, verify=verify, timeout=10).raise_for_status()

        def run() -> None:
            with ThreadPoolExecutor(_WORKERS) as pool:
                list(pool.map(one, range(calls)))
        return run

    opened: dict[str, int] = {}

    def counted(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            before = _connections()
            fn()
            opened[name] = _connections() - before - 1
        return run

    medians = side_by_side({
        "keep-alive": counted("keep-alive", serial({}, "keep-alive")),
        "new connection": counted("new connection", serial(close, "new connection")),
        "keep-alive x16": counted("keep-alive x16", fan_out({})),
        "new connection x16": counted("new connection x16", fan_out(close)),
    }, rounds=rounds)
    http.close()
    result = {f"{name} req/s": calls / seconds for name, seconds in medians.items()}
    for name, times in latencies.items():
        # the first request of a kept-alive block reconnects (the other contestant closed it): it counts too
        result[f"{name} req/s"] = 1 / statistics.median(times)
    result.update({f"{name} connections": float(n) for name, n in opened.items()})
    return result


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400, help="requests per contestant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-tls", action="store_true", help="skip the HTTPS rows")
    args = parser.parse_args(argv)

    results: dict[str, float] = {}
    rows: list[tuple[str, str, str]] = []
    for scheme, flags in [("http", ()), *([] if args.no_tls else [("https", ("--tls",))])]:
        with sandbox_process("--no-seed", *flags) as sb, _counting_connects():
            measured = _measure(sb, args.calls, args.rounds)
        for name, value in measured.items():
            results[f"{scheme} {name}"] = value
        serial_ratio = measured["keep-alive req/s"] / measured["new connection req/s"]
        fan_ratio = measured["keep-alive x16 req/s"] / measured["new connection x16 req/s"]
        results[f"{scheme} serial ratio"] = serial_ratio
        results[f"{scheme} fan-out ratio"] = fan_ratio
        rows += [
            (f"{scheme}: one kept-alive connection (req/s)", f"{measured['keep-alive req/s']:.0f}", "-"),
            (f"{scheme}: a new connection per request (req/s)", f"{measured['new connection req/s']:.0f}", "-"),
            (f"{scheme}: kept-alive / new connection (ratio)", f"{serial_ratio:.2f}", "> 1"),
            (f"{scheme}: 16 threads, kept alive (req/s)", f"{measured['keep-alive x16 req/s']:.0f}", "-"),
            (f"{scheme}: 16 threads, new connections (req/s)", f"{measured['new connection x16 req/s']:.0f}", "-"),
            (f"{scheme}: 16 threads, kept-alive / new (ratio)", f"{fan_ratio:.2f}", "> 1"),
            (f"{scheme}: TCP connections for {args.calls} requests, kept alive (serial / x16)",
             f"{measured['keep-alive connections']:.0f} / {measured['keep-alive x16 connections']:.0f}",
             f"1 / <= {_WORKERS}"),
        ]
    report("sandbox HTTP server: keep-alive", rows)
    return results


if __name__ == "__main__":
    main()
