"""Benchmark of the sandbox's HTTP server: what keep-alive buys (issues #10 and #13).

    .venv/bin/python tests/benchmarks/bench_server.py [--calls N] [--rounds R] [--no-tls]

Prints, measured side by side in one run against sandboxes in other processes:
- requests/s over one kept-alive connection vs a new connection per request
  (``Connection: close``), over HTTP and over HTTPS (where every new connection
  costs a TLS handshake): 1 / the median time of one request, the two alternating
  request by request (so a busy 2-core machine's slow spells hit both alike);
- the same with 16 threads sharing one ``requests.Session`` each (a fan-out):
  requests per second of whole rounds, ratio of medians;
- the TCP connections the kept-alive contestants opened in all (client-side count).
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


def _session(sb: SandboxProcess, token: str) -> requests.Session:
    http = requests.Session()
    http.mount(sb.url.split(":", 1)[0] + "://", HTTPAdapter(pool_maxsize=_WORKERS))
    http.headers["Authorization"] = f"Bearer {token}"
    return http


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
    verify = sb.ca_bundle or True  # passed per call: REQUESTS_CA_BUNDLE would override Session.verify
    token = requests.post(sb.url + "/oauth/token", verify=verify, timeout=10, json={
        "grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": sb.client_secret,
        "audience": "https://api.metafold3d.com"}).json()["access_token"]
    url = sb.url + "/user/usage"
    kept, fresh = _session(sb, token), _session(sb, token)
    fresh.headers["Connection"] = "close"
    result: dict[str, float] = {}

    # Serial: the two contestants alternate request by request (each on its own session, so the
    # kept-alive one really keeps its connection), and each gets the median of its request times:
    # a busy machine's slow spells then hit both alike.
    times: dict[str, list[float]] = {"keep-alive": [], "new connection": []}
    opened_kept = 0
    for _ in range(calls * rounds + 20):  # the first 20 pairs warm up
        for name, http in (("keep-alive", kept), ("new connection", fresh)):
            mark = _connections()
            started = time.perf_counter()
            http.get(url, verify=verify, timeout=10).raise_for_status()
            times[name].append(time.perf_counter() - started)
            if name == "keep-alive":
                opened_kept += _connections() - mark - 1
    for name, values in times.items():
        result[f"{name} req/s"] = 1 / statistics.median(values[20:])
    result["keep-alive connections"] = float(opened_kept)

    # 16 threads sharing each session: requests/s of whole rounds (ratio of medians).
    opened: dict[str, int] = {}

    def fan_out(http: requests.Session, name: str) -> Callable[[], None]:
        def one(_: int) -> None:
            http.get(url, verify=verify, timeout=10).raise_for_status()

        def run() -> None:
            mark = _connections()
            with ThreadPoolExecutor(_WORKERS) as pool:
                list(pool.map(one, range(calls)))
            opened[name] = opened.get(name, 0) + _connections() - mark - 1
        return run

    medians = side_by_side({"keep-alive x16": fan_out(kept, "keep-alive x16"),
                            "new connection x16": fan_out(fresh, "new connection x16")}, rounds=rounds)
    for name, seconds in medians.items():
        result[f"{name} req/s"] = calls / seconds
    result["keep-alive x16 connections"] = float(opened["keep-alive x16"])
    kept.close()
    fresh.close()
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
            (f"{scheme}: TCP connections opened, kept alive (serial / x16)",
             f"{measured['keep-alive connections']:.0f} / {measured['keep-alive x16 connections']:.0f}",
             f"1 / <= {_WORKERS}"),
        ]
    report("sandbox HTTP server: keep-alive", rows)
    return results


if __name__ == "__main__":
    main()
