"""Benchmark of the account-wide fan-out (issue #10).

    .venv/bin/python tests/benchmarks/bench_fanout.py [--projects N] [--latency S] [--rounds R]

Prints, measured side by side in one run against a sandbox in another process that
adds ``--latency`` seconds to every API request:
- ``mf.jobs(all_projects=True)`` at the default concurrency (6), and at 16, against
  the loop a user writes today (``mf.jobs(project=p)`` for every project, then
  ``pd.concat``) (goal: >= 5x faster at the default);
- token exchanges of a fresh login over every fan-out run (goal: 1);
- "Connection pool is full" warnings from urllib3 (goal: 0).

Note: the sandbox's werkzeug server closes every connection after its answer, so
each request here opens a new (loopback) connection; against a keep-alive server
the fan-out reuses its pool and both contestants lose the connect time.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, side_by_side  # noqa: E402

import metafold_jupyter as mf  # noqa: E402

_SERVER = textwrap.dedent("""
    import sys
    from metafold_jupyter.sandbox import Sandbox
    sb = Sandbox(bulk_projects=int(sys.argv[1])).start()
    sb.latency = float(sys.argv[2])
    print(sb.url, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    sb.stop()
""")


@contextmanager
def latency_sandbox(bulk_projects: int, latency: float) -> Iterator[str]:
    """A sandbox with generated projects and per-request latency, in its own process."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER, str(bulk_projects), str(latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        url = proc.stdout.readline().strip()
        if not url:
            raise RuntimeError("the sandbox did not start")
        yield url
    finally:
        proc.stdin.close()
        proc.wait(10)


class _PoolWarnings(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" records."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "pool is full" in record.getMessage():
            self.count += 1


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=60, help="projects in the account")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the server adds to every request")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from metafold_jupyter.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

    pool = _PoolWarnings()
    urllib3_log = logging.getLogger("urllib3")
    urllib3_log.addHandler(pool)
    # the seed has 10 projects of its own; generate the rest
    with latency_sandbox(max(args.projects - 10, 0), args.latency) as url:
        session = mf.login(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, auth_domain=url, base_url=url)
        projects = len(session.get_json("/projects"))

        def sequential() -> pd.DataFrame:
            frames = [mf.jobs(project=pid) for pid in mf.projects()["id"]]
            return pd.concat(frames, ignore_index=True)

        def fanout(concurrency: int):
            def run() -> pd.DataFrame:
                session.concurrency = concurrency
                return mf.jobs(all_projects=True, progress=False)
            return run

        same_rows = sorted(sequential()["id"]) == sorted(fanout(6)()["id"])
        medians = side_by_side(
            {"sequential": sequential, "fanout6": fanout(6), "fanout16": fanout(16)}, rounds=args.rounds
        )
        exchanges = session.token_exchanges
        mf.logout()
    urllib3_log.removeHandler(pool)

    speedup = medians["sequential"] / medians["fanout6"]
    speedup16 = medians["sequential"] / medians["fanout16"]
    report(f"mf.jobs(all_projects=True) over {projects} projects, {args.latency * 1000:.0f} ms per request", [
        ("sequential mf.jobs(project=p) loop (s)", f"{medians['sequential']:.3f}", "-"),
        ("all_projects=True, concurrency 6 (s)", f"{medians['fanout6']:.3f}", "-"),
        ("all_projects=True, concurrency 16 (s)", f"{medians['fanout16']:.3f}", "-"),
        ("speed-up at the default concurrency 6", f"{speedup:.1f}x", ">= 5x"),
        ("speed-up at concurrency 16", f"{speedup16:.1f}x", "-"),
        ("same rows as the loop", f"{same_rows}", "True"),
        ("token exchanges (login + every run)", f"{exchanges}", "1"),
        ("connection pool warnings", f"{pool.count}", "0"),
    ])
    return {
        "projects": projects,
        "speedup": speedup,
        "speedup16": speedup16,
        "same_rows": same_rows,
        "exchanges": exchanges,
        "pool_warnings": pool.count,
    }


if __name__ == "__main__":
    main()
