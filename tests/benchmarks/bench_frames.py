"""Benchmark of the DataFrame helpers (issue: DataFrame helpers, transfers, workflows).

    .venv/bin/python tests/benchmarks/bench_frames.py [--projects 5000] [--rounds 9]

Measured side by side in one run against a sandbox (in another process) holding
5,000 extra projects: ``mf.projects()`` vs

- raw requests + ``pd.DataFrame`` + ``pd.to_datetime(format=...)`` on the two date
  columns (goal: ratio <= 1.15), and
- the official SDK's ``projects.list()`` turned into a DataFrame (goal: ours at
  least 3x faster; skipped when the ``metafold`` package is not installed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, sandbox_process, side_by_side  # noqa: E402

import metafold_jupyter as mf  # noqa: E402
from metafold_jupyter.frames import RFC1123  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)

    with sandbox_process("--bulk-projects", str(args.projects)) as sb:
        session = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        raw_http = requests.Session()
        raw_http.headers["Authorization"] = "Bearer " + session.access_token()

        def raw() -> pd.DataFrame:
            r = raw_http.get(sb.url + "/projects", timeout=(3.05, 30))
            r.raise_for_status()
            df = pd.DataFrame(r.json())
            for column in ("created", "modified"):
                df[column] = pd.to_datetime(df[column], format=RFC1123, utc=True)
            return df

        contestants = {"raw": raw, "ours": mf.projects}
        try:
            import attrs
            from metafold import MetafoldClient

            client = MetafoldClient(access_token=session.access_token(), base_url=sb.url + "/")
            contestants["sdk"] = lambda: pd.DataFrame(
                [attrs.asdict(p, recurse=False) for p in client.projects.list()])
        except ImportError:
            pass
        rows_seen = len(mf.projects())
        medians = side_by_side(contestants, rounds=args.rounds)
        mf.logout()

    ratio = medians["ours"] / medians["raw"]
    rows = [
        (f"projects listed", f"{rows_seen}", f">= {args.projects}"),
        ("raw requests + DataFrame (ms)", f"{medians['raw'] * 1e3:.1f}", "-"),
        ("mf.projects() (ms)", f"{medians['ours'] * 1e3:.1f}", "-"),
        ("mf.projects() / raw (ratio)", f"{ratio:.3f}", "<= 1.15"),
    ]
    results = {"raw_ratio": ratio}
    if "sdk" in medians:
        speedup = medians["sdk"] / medians["ours"]
        rows += [("official SDK list + DataFrame (ms)", f"{medians['sdk'] * 1e3:.1f}", "-"),
                 ("speed-up over the SDK (x)", f"{speedup:.1f}", ">= 3")]
        results["sdk_speedup"] = speedup
    report(f"mf.projects() on {rows_seen} projects", rows)
    return results


if __name__ == "__main__":
    main()
