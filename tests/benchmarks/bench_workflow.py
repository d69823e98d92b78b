"""Benchmark of waiting for a workflow (issue: DataFrame helpers, transfers, workflows).

    .venv/bin/python tests/benchmarks/bench_workflow.py [--seconds 60]

Runs a workflow that takes ``--seconds`` on the sandbox and prints how many status
polls ``mf.run_workflow`` made (goal: at most 20 for 60 s) and how long after the
workflow finished the helper returned (goal: within one poll interval, 5 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import report  # noqa: E402
from test_operations import OK_WORKFLOW as DEFINITION  # noqa: E402

import metafold_jupyter as mf  # noqa: E402
from metafold_jupyter.operations import POLL_MAX  # noqa: E402
from metafold_jupyter.sandbox import Sandbox  # noqa: E402


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    with Sandbox() as sb:
        mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url, project=sb.default_project_id)
        jobs = mf.run_workflow(DEFINITION, parameters={"sandbox.duration": f"{args.seconds:g}"}, progress=False)
        returned = time.time()
        polls = len([r for r in sb.requests if r.path.endswith("/status")])
        (workflow,) = mf.workflows(q=f"id:{jobs['workflow_id'].iloc[0]}").itertuples()
        finished = workflow.finished.timestamp()
        mf.logout()
    # the API's dates have whole seconds: the lag is known to within one second
    lag = returned - finished
    report(f"run_workflow on a {args.seconds:g} s workflow", [
        ("status polls", f"{polls}", "<= 20" if args.seconds >= 60 else "-"),
        ("returned after the workflow finished (s)", f"{lag:.1f} ± 1", f"<= {POLL_MAX:g}"),
        ("all jobs succeeded", str(set(jobs["state"]) == {"success"}), "True"),
    ])
    return {"polls": polls, "lag_s": lag}


if __name__ == "__main__":
    main()
