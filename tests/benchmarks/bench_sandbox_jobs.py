"""What one study workflow costs the sandbox, and the trend a thickness study shows.

    .venv/bin/python tests/benchmarks/bench_sandbox_jobs.py [--resolution 32] [--thickness 0.5 1 1.5 2]

Computes the study workflow of the README (``implicit/evaluate`` → ``implicit/metrics``
and ``mesh/from-volume``) once per thickness, exactly as the sandbox does when those
jobs finish, each with an empty result cache, and prints the CPU time per workflow
(goal: well under a second at the default resolution, since a study runs 16 of them
inside one sandbox) with the volume, area and triangle count it reports.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parent.parent)]
from common import report  # noqa: E402

from metafold_jupyter.sandbox import jobtypes  # noqa: E402


def study_workflow(thickness: float, resolution: int, workdir: Path) -> tuple[float, dict[str, str], int]:
    """Run the three jobs; returns (CPU seconds, metrics params, mesh bytes)."""
    cache = jobtypes.ResultCache()
    params = {"thickness": str(thickness), "resolution": str(resolution)}
    started = time.process_time()
    _, files = jobtypes.run_job("implicit/evaluate", params, {}, "sample", cache)
    data = files["volume"][1]
    path = workdir / f"volume-{thickness}-{resolution}.bin"
    path.write_bytes(data)
    volume = {"volume": jobtypes.JobInput(path.name, "sha256:" + hashlib.sha256(data).hexdigest(), path)}
    metrics, _ = jobtypes.run_job("implicit/metrics", {}, volume, "metrics", cache)
    _, mesh = jobtypes.run_job("mesh/from-volume", {}, volume, "mesh", cache)
    return time.process_time() - started, metrics, len(mesh["mesh"][1])


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=int(jobtypes.DEFAULT_LATTICE["resolution"]))
    parser.add_argument("--thickness", type=float, nargs="+", default=[0.5, 1.0, 1.5, 2.0])
    args = parser.parse_args(argv)
    rows, volumes, areas, cpu = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        study_workflow(1.0, 8, Path(tmp))  # warm-up: imports numpy and builds the case tables
        for thickness in args.thickness:
            seconds, metrics, mesh_bytes = study_workflow(thickness, args.resolution, Path(tmp))
            volumes.append(float(metrics["volume"]))
            areas.append(float(metrics["area"]))
            cpu.append(seconds)
            rows.append((f"thickness {thickness:g} mm: volume mm³ / area mm² / STL MB",
                         f"{volumes[-1]:.0f} / {areas[-1]:.0f} / {mesh_bytes / 1e6:.1f}", "volume rises"))
    rows.append(("CPU per workflow (s, max)", f"{max(cpu):.3f}", "well under 1"))
    report(f"study workflow: gyroid 20 mm box, 10 mm cells, resolution {args.resolution}", rows)
    return {"cpu_max_s": max(cpu), "volumes": volumes, "areas": areas}


if __name__ == "__main__":
    main()
