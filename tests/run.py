#!/usr/bin/env python3
"""The test command: set up a fresh machine and run every test.

    python3 tests/run.py [pytest arguments]

1. Creates .venv, installs metafold-jupyter with its test extras (pandas 3, the
   official SDK, JupyterLab, nbclient, Playwright), and Debian's chromium for the
   browser test when it is missing (apt-get, as root).
2. Runs the whole pytest suite: sandbox, core, helpers, magics, notebooks in real
   kernels, and the login widget in JupyterLab in headless Chromium.
3. Runs the DataFrame and transfer tests again with pandas 2.2 in .venv-pandas2,
   since the helpers promise the same schemas on pandas 2.2 and 3.x.

Extra arguments go to the first pytest run only (and skip the pandas 2.2 run).
"""

from __future__ import annotations

import os
import subprocess
import sys

from bootstrap import ROOT, ensure_chromium, ensure_venv

PANDAS2_TESTS = ["tests/test_frames.py", "tests/test_operations.py"]


def main(argv: list[str]) -> int:
    python = ensure_venv("test")
    chromium = ensure_chromium()
    env = dict(os.environ)
    if chromium:
        env["METAFOLD_TEST_CHROMIUM"] = chromium
    status = _pytest(python, ["tests", *argv], env)
    if argv:
        return status
    print("\n=== the DataFrame and transfer tests again, on pandas 2.2", flush=True)
    pandas2 = ensure_venv("test", venv=ROOT / ".venv-pandas2", pins=["pandas>=2.2,<2.3"])
    return status or _pytest(pandas2, [*PANDAS2_TESTS, "-p", "no:cacheprovider"], env)


def _pytest(python, args: list[str], env: dict[str, str]) -> int:
    cmd = [str(python), "-m", "pytest", *args]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
