"""Benchmark of parameter studies (issue #10).

    .venv/bin/python tests/benchmarks/bench_studies.py [--runs 16] [--seconds 3] [--concurrency 4] [--rounds 1]

Prints, measured side by side in one run against a sandbox in another process:
- ``mf.run_workflows`` of ``--runs`` workflows of ``--seconds`` each at ``--concurrency``
  against the same runs one after another (the loop a user writes today:
  ``mf.run_workflow(..., parameters=row)`` per row) (goal: >= 3.5x faster for 16 runs
  of 3 s at concurrency 4);
- the study's status polls against ``--runs`` times the polls of one run (goal: <=);
- with a sandbox that refuses a dispatch past 2 workflows in flight (429 + Retry-After):
  every run completes, the sandbox made exactly one workflow per run (no dispatch ran
  twice), and no request started while a Retry-After was running (429s honoured).

Requests are timed at the client's connection adapter (``WireLog`` from the tests).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import report, sandbox_process, side_by_side  # noqa: E402
from test_studies import METRICS as DEFINITION  # noqa: E402
from test_studies import WireLog  # noqa: E402

import metafold_jupyter as mf  # noqa: E402


def _runs(n: int) -> list[dict[str, float]]:
    """``n`` distinct design points (thickness x resolution)."""
    grid = mf.grid({"sample.thickness": [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
                    "sample.resolution": [12, 14, 16, 18, 20, 22, 24, 26]})
    return grid.iloc[:n].to_dict("records")


def _login(sb) -> object:
    return mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url,
                    project=sb.default_project_id)


def _polls(wire: WireLog) -> int:
    return len([e for e in wire.exchanges if e.method == "GET" and e.path.endswith("/status")])


def speedup(args: argparse.Namespace) -> dict[str, float]:
    runs = _runs(args.runs)
    with sandbox_process("--workflow-duration", f"{args.seconds:g}") as sb:
        s = _login(sb)

        def sequential() -> None:
            for row in runs:
                jobs = mf.run_workflow(DEFINITION, parameters=row, progress=False)
                assert set(jobs["state"]) == {"success"}

        def study() -> None:
            df = mf.run_workflows(DEFINITION, runs, concurrency=args.concurrency, progress=False)
            assert set(df["state"]) == {"success"}

        wire = WireLog(s)
        mf.run_workflows(DEFINITION, runs[:1], progress=False)
        one = _polls(wire)
        wire.exchanges.clear()
        study()
        polls = _polls(wire)
        wire.close()
        medians = side_by_side({"sequential": sequential, "study": study}, rounds=args.rounds)
        mf.logout()
    ratio = medians["sequential"] / medians["study"]
    report(f"{args.runs} runs of a {args.seconds:g} s workflow", [
        ("one after another: mf.run_workflow per run (s)", f"{medians['sequential']:.1f}", "-"),
        (f"mf.run_workflows, concurrency {args.concurrency} (s)", f"{medians['study']:.1f}", "-"),
        ("speed-up", f"{ratio:.2f}x", ">= 3.5x (16 runs of 3 s at 4)"),
        ("status polls of one run", f"{one}", "-"),
        ("status polls of the study", f"{polls}", f"<= {args.runs} x {one} = {args.runs * one}"),
    ])
    return {"speedup": ratio, "polls": polls, "polls_one": one}


def dispatch_limit(args: argparse.Namespace, limit: int = 2) -> dict[str, float]:
    runs = _runs(args.runs)
    with sandbox_process("--workflow-duration", f"{args.seconds:g}", "--max-running-workflows", str(limit)) as sb:
        s = _login(sb)
        before = {str(w["id"]) for w in s.get_json(f"/projects/{s.project_id}/workflows")}
        wire = WireLog(s)
        try:
            df = mf.run_workflows(DEFINITION, runs, concurrency=args.concurrency, progress=False)
        finally:
            wire.close()
        created = {str(w["id"]) for w in s.get_json(f"/projects/{s.project_id}/workflows")} - before
        mf.logout()
    completed = int((df["state"] == "success").sum())
    refused = len(wire.dispatches(429))
    violations = len(wire.violations())
    report(f"{args.runs} runs at concurrency {args.concurrency}, the server refusing past {limit} in flight", [
        ("runs completed", f"{completed}/{len(runs)}", "all"),
        ("workflows the sandbox made", f"{len(created)}", f"{len(runs)} (no dispatch ran twice)"),
        ("rows naming those workflows", f"{set(df['workflow_id']) == created}", "True"),
        ("dispatches refused (429)", f"{refused}", "> 0"),
        ("requests started inside a Retry-After", f"{violations}", "0"),
    ])
    return {"completed": completed, "runs": len(runs), "created": len(created), "rows_match": set(df["workflow_id"])
            == created, "refused": refused, "violations": violations}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of one workflow")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1, help="timed rounds after the warm-up")
    args = parser.parse_args(argv)
    return {**speedup(args), **dispatch_limit(args)}


if __name__ == "__main__":
    main()
