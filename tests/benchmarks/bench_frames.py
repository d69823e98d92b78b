"""Benchmark of the DataFrame helpers (issues: DataFrame helpers; #13.2 both date layouts).

    .venv/bin/python tests/benchmarks/bench_frames.py [--projects 5000] [--rounds 9]

Measured side by side in one run, once per date layout, against a sandbox (in
another process) holding 5,000 extra projects — first answering RFC 1123 dates
(what the live service sends), then ISO 8601 (what the published reference
documents): ``mf.projects()`` vs

- raw requests + ``pd.DataFrame`` + ``pd.to_datetime(utc=True)`` on the two date
  columns (given the RFC 1123 format, which pandas cannot infer; ISO 8601 it
  infers itself) — goal: ratio <= 1.15 for both layouts, and
- the official SDK's ``projects.list()`` turned into a DataFrame (goal: ours at
  least 3x faster; RFC 1123 only, as the SDK parses no other layout; skipped when
  the ``metafold`` package is not installed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, sandbox_process, side_by_side  # noqa: E402

import metafold_jupyter as mf  # noqa: E402
from metafold_jupyter.frames import RFC1123  # noqa: E402

#: date layout -> the keyword arguments a careful raw caller gives pd.to_datetime
LAYOUTS: dict[str, dict[str, Any]] = {"rfc1123": {"format": RFC1123}, "iso8601": {}}


def _measure(layout: str, projects: int, rounds: int) -> tuple[int, dict[str, float]]:
    with sandbox_process("--bulk-projects", str(projects), "--date-style", layout) as sb:
        session = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url)
        raw_http = requests.Session()
        raw_http.headers["Authorization"] = "Bearer " + session.access_token()
        to_datetime = LAYOUTS[layout]

        def raw() -> pd.DataFrame:
            r = raw_http.get(sb.url + "/projects", timeout=(3.05, 30))
            r.raise_for_status()
            df = pd.DataFrame(r.json())
            for column in ("created", "modified"):
                df[column] = pd.to_datetime(df[column], utc=True, **to_datetime)
            return df

        contestants = {"raw": raw, "ours": mf.projects}
        if layout == "rfc1123":
            try:
                import attrs
                from metafold import MetafoldClient

                client = MetafoldClient(access_token=session.access_token(), base_url=sb.url + "/")
                contestants["sdk"] = lambda: pd.DataFrame(
                    [attrs.asdict(p, recurse=False) for p in client.projects.list()])
            except ImportError:
                pass
        frame = mf.projects()
        if frame["created"].isna().any():  # a benchmark of wrong answers would be worthless
            raise RuntimeError(f"mf.projects() left {layout} dates unparsed")
        medians = side_by_side(contestants, rounds=rounds)
        mf.logout()
        raw_http.close()
    return len(frame), medians


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)

    results: dict[str, float] = {}
    rows: list[tuple[str, str, str]] = []
    rows_seen = 0
    for layout in LAYOUTS:
        rows_seen, medians = _measure(layout, args.projects, args.rounds)
        ratio = medians["ours"] / medians["raw"]
        rows += [
            (f"{layout}: raw requests + DataFrame + to_datetime (ms)", f"{medians['raw'] * 1e3:.1f}", "-"),
            (f"{layout}: mf.projects() (ms)", f"{medians['ours'] * 1e3:.1f}", "-"),
            (f"{layout}: mf.projects() / raw (ratio)", f"{ratio:.3f}", "<= 1.15"),
        ]
        results["raw_ratio" if layout == "rfc1123" else f"{layout}_raw_ratio"] = ratio
        if "sdk" in medians:
            speedup = medians["sdk"] / medians["ours"]
            rows += [(f"{layout}: official SDK list + DataFrame (ms)", f"{medians['sdk'] * 1e3:.1f}", "-"),
                     (f"{layout}: speed-up over the SDK (x)", f"{speedup:.1f}", ">= 3")]
            results["sdk_speedup"] = speedup
    report(f"mf.projects() on {rows_seen} projects", [("projects listed", f"{rows_seen}", f">= {args.projects}"),
                                                      *rows])
    return results


if __name__ == "__main__":
    main()
