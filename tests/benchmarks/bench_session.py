"""Benchmark of the kernel-level session (issue: core).

    .venv/bin/python tests/benchmarks/bench_session.py [--calls N] [--rounds R]

Prints, measured side by side in one run against a sandbox in another process:
- per-call overhead of ``Session.get_json`` vs a raw keep-alive requests call
  with a fixed Bearer header (goal: ratio <= 1.1);
- token exchanges per 1,000 calls (goal: 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, sandbox_process, side_by_side  # noqa: E402

import metafold_jupyter as mf  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round")
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)

    with sandbox_process() as sb:
        session = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        raw = requests.Session()
        raw.headers["Authorization"] = "Bearer " + session.access_token()
        url = sb.url + "/user/usage"

        def with_raw() -> None:
            for _ in range(args.calls):
                r = raw.get(url, timeout=(3.05, 30))
                r.raise_for_status()
                r.json()

        def with_session() -> None:
            for _ in range(args.calls):
                session.get_json("/user/usage")

        medians = side_by_side({"raw": with_raw, "session": with_session}, rounds=args.rounds)
        overhead = medians["session"] / medians["raw"]

        fresh = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        for _ in range(1000):
            fresh.get_json("/user/usage")
        exchanges = fresh.token_exchanges
        mf.logout()

    per_call = {k: v / args.calls * 1e6 for k, v in medians.items()}
    report("kernel-level session", [
        ("raw requests call (µs)", f"{per_call['raw']:.0f}", "-"),
        ("Session.get_json call (µs)", f"{per_call['session']:.0f}", "-"),
        ("get_json / raw (ratio)", f"{overhead:.3f}", "<= 1.1"),
        ("token exchanges per 1,000 calls", f"{exchanges}", "1"),
    ])
    return {"overhead_ratio": overhead, "exchanges_per_1000": exchanges}


if __name__ == "__main__":
    main()
