"""Shared benchmark plumbing: a sandbox in its own process, and side-by-side timing.

The sandbox runs in a separate process so that the client being measured has the
interpreter (and its memory accounting) to itself. Ratios are measured side by
side in one run, alternating the two contestants round by round, and reported as
a ratio of medians: absolute times on these machines are noisy, ratios less so.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from metafold_jupyter.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET


@dataclass
class SandboxProcess:
    url: str
    download_url: str
    default_project_id: str
    ca_bundle: str | None = None  # with --tls: the CA clients must trust
    client_id: str = SANDBOX_CLIENT_ID
    client_secret: str = SANDBOX_CLIENT_SECRET


@contextmanager
def sandbox_process(*args: str) -> Iterator[SandboxProcess]:
    """``python -m metafold_jupyter.sandbox --port 0 ARGS`` until the block ends."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "metafold_jupyter.sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("the sandbox did not start:\n" + "".join(lines))
            lines.append(line)
        text = "".join(lines)
        ca = re.search(r"REQUESTS_CA_BUNDLE=(\S+)", text)
        yield SandboxProcess(
            url=re.search(r"running at (\S+)", text).group(1),
            download_url=re.search(r"download origin:\s+(\S+)", text).group(1),
            default_project_id=re.search(r"default project:\s+(\S+)", text).group(1),
            ca_bundle=ca.group(1) if ca else None,
        )
    finally:
        proc.terminate()
        proc.wait(10)


def side_by_side(
    contestants: dict[str, Callable[[], object]],
    rounds: int = 7,
    between: Callable[[], object] | None = None,
) -> dict[str, float]:
    """Median seconds of each contestant, run alternately ``rounds`` times after a warm-up.

    ``between`` runs untimed before every timed call (e.g. to remove files written).
    """
    for fn in contestants.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in contestants}
    for _ in range(rounds):
        for name, fn in contestants.items():
            if between is not None:
                between()
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def report(title: str, rows: list[tuple[str, str, str]]) -> None:
    """Print a small table: measure, figure, goal."""
    print(f"\n== {title}")
    width = max(len(r[0]) for r in rows)
    for measure, figure, goal in rows:
        print(f"  {measure:<{width}}  {figure:>14}   goal: {goal}")
