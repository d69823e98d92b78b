#!/usr/bin/env python3
"""The test command: set up a fresh machine and run every test.

    python3 tests/run.py [pytest arguments]

Creates .venv, installs metafold-jupyter with its test extras, installs Debian's
chromium for the browser test when it is missing, then runs pytest on tests/.
"""

from __future__ import annotations

import os
import subprocess
import sys

from bootstrap import ROOT, ensure_chromium, ensure_venv


def main(argv: list[str]) -> int:
    python = ensure_venv("test")
    chromium = ensure_chromium()
    env = dict(os.environ)
    if chromium:
        env["METAFOLD_TEST_CHROMIUM"] = chromium
    cmd = [str(python), "-m", "pytest", "tests", *argv]
    print("+", " ".join(cmd), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
