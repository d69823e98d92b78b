"""Benchmark of asset download (issue: DataFrame helpers, transfers, workflows).

    .venv/bin/python tests/benchmarks/bench_transfer.py [--mib 256] [--rounds 5] [--link-mib-s 400]

Measured side by side in one run against a sandbox in another process, on the same
signed link:

- ``mf.download_asset`` (streamed to a temp file, sha256 checked in a helper thread,
  atomic rename) vs a raw streamed requests download of the link (no checks at all),
  and vs the same raw download that also hashes (the work the product must do);
- once with the download origin as fast as loopback goes, and once emulating a
  network link of ``--link-mib-s`` (a fast 3.4 Gbit/s link by default);
- the peak RSS growth of one download, measured in a fresh child process.

Goals: throughput ratio >= 0.9, RSS growth <= 32 MiB. Both contestants write a new
file each round (the previous ones are removed untimed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import report, sandbox_process, side_by_side  # noqa: E402

import metafold_jupyter as mf  # noqa: E402

_CHILD = r"""
import json, sys
import metafold_jupyter as mf
from metafold_jupyter.sandbox import SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1])

url, project, asset, dest = sys.argv[1:5]
mf.login(SANDBOX_CLIENT_ID, SANDBOX_CLIENT_SECRET, auth_domain=url, base_url=url, project=project)
mf.projects()  # pandas and the rest loaded before the baseline
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
before = status("VmRSS:")
mf.download_asset(asset, dest)  # with its progress bar, as a user runs it
print(json.dumps({"rss_kib": before, "peak_kib": status("VmHWM:")}))
"""


def measure(sb, tmp: Path, rounds: int) -> dict[str, float]:
    mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url, project=sb.default_project_id)
    asset = mf.assets(q="filename:bulk.bin").iloc[0]
    link = mf.session().get_json(f"/projects/{sb.default_project_id}/assets/{asset['id']}", {"download": "true"})["link"]
    raw_session = requests.Session()
    counter = iter(range(10**6))

    def raw(check: bool = False) -> None:
        digest = hashlib.sha256()
        path = tmp / f"raw-{next(counter)}.bin"
        with raw_session.get(link, stream=True, timeout=(3.05, 30)) as r, open(path, "wb") as f:
            r.raise_for_status()
            for chunk in r.iter_content(1 << 20):
                f.write(chunk)
                if check:
                    digest.update(chunk)
        if check:
            assert "sha256:" + digest.hexdigest() == asset["checksum"]

    def ours() -> None:
        mf.download_asset(asset["id"], tmp / f"ours-{next(counter)}.bin", progress=False)

    def remove_outputs() -> None:
        for path in tmp.glob("*.bin"):
            path.unlink()

    medians = side_by_side({"raw": raw, "raw+sha256": lambda: raw(True), "ours": ours}, rounds, remove_outputs)
    mf.logout()
    return {name: asset["size"] / 2**20 / seconds for name, seconds in medians.items()}


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--link-mib-s", type=float, default=400.0, help="emulated link speed for the second run")
    args = parser.parse_args(argv)
    results: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        for label, extra in (("loopback", []), (f"{args.link_mib_s:g} MiB/s link", ["--download-mib-s",
                                                                                 str(args.link_mib_s)])):
            with sandbox_process("--bulk-asset-mib", str(args.mib), *extra) as sb:
                speed = measure(sb, Path(tmp), args.rounds)
                if label == "loopback":
                    child = subprocess.run(
                        [sys.executable, "-c", _CHILD, sb.url, sb.default_project_id, _bulk_id(sb),
                         str(Path(tmp) / "child.bin")], capture_output=True, text=True, check=True)
                    mem = json.loads(child.stdout.strip().splitlines()[-1])
                    results["rss_growth_mib"] = (mem["peak_kib"] - mem["rss_kib"]) / 1024
            key = "loopback" if label == "loopback" else "link"
            results[f"{key}_ratio"] = speed["ours"] / speed["raw"]
            results[f"{key}_ratio_vs_hashing_raw"] = speed["ours"] / speed["raw+sha256"]
            rows += [
                (f"{label}: raw requests (MiB/s)", f"{speed['raw']:.0f}", "-"),
                (f"{label}: raw + sha256 (MiB/s)", f"{speed['raw+sha256']:.0f}", "-"),
                (f"{label}: mf.download_asset (MiB/s)", f"{speed['ours']:.0f}", "-"),
                (f"{label}: ours / raw", f"{results[f'{key}_ratio']:.3f}", ">= 0.9"),
                (f"{label}: ours / raw + sha256", f"{results[f'{key}_ratio_vs_hashing_raw']:.3f}", ">= 1"),
            ]
    sha = _sha256_speed()
    rows += [
        ("sha256 on one core (MiB/s)", f"{sha:.0f}", "-"),
        ("peak RSS growth of a download (MiB)", f"{results['rss_growth_mib']:.1f}", "<= 32"),
    ]
    report(f"download of a {args.mib} MiB asset", rows)
    results["sha256_mib_s"] = sha
    return results


def _bulk_id(sb) -> str:
    s = mf.login(sb.client_id, sb.client_secret, auth_domain=sb.url, base_url=sb.url, project=sb.default_project_id)
    try:
        return str(mf.assets(q="filename:bulk.bin").iloc[0]["id"])
    finally:
        s.close()
        mf.logout()


def _sha256_speed() -> float:
    import time

    block = bytes(1 << 20)
    digest = hashlib.sha256()
    started = time.perf_counter()
    for _ in range(256):
        digest.update(block)
    return 256 / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
