#!/usr/bin/env python3
"""The demo command: set up a fresh machine and run the getting-started notebook.

    python3 notebooks/demo.py [NOTEBOOK]

Creates .venv (stdlib only until then), installs metafold-jupyter with its notebook
extras, then executes notebooks/01-getting-started.ipynb headless in a real
Jupyter kernel on the embedded sandbox (no account, no network) and prints each
cell with its text output: the login status line, the tables of projects, usage,
quota and licence. Nothing is written back to the notebook.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = HERE / "01-getting-started.ipynb"


def bootstrap(argv: list[str]) -> int:
    sys.path.insert(0, str(HERE.parent / "tests"))
    from bootstrap import ensure_venv

    python = ensure_venv("notebooks")
    return subprocess.call([str(python), __file__, "--in-venv", *argv])


def run(notebook: Path) -> int:
    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(notebook, as_version=4)
    # wide tables print on one line in a terminal (this cell is the demo's, not the notebook's)
    setup = nbformat.v4.new_code_cell(
        "import pandas as pd\npd.set_option('display.width', 250)\npd.set_option('display.max_colwidth', 36)"
    )
    setup.metadata["demo_setup"] = True
    nb.cells.insert(0, setup)
    # The demo runs on the embedded sandbox: no credentials of yours are read, and a
    # temporary working directory means no .env above it is picked up either.
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFOLD_")}
    env.update(METAFOLD_SANDBOX="1", MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory(prefix="metafold-demo-") as cwd:
        # IPC sockets in the temporary directory: the kernel is reachable by no one else
        km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(cwd) / "kernel"))
        client = NotebookClient(nb, km=km, timeout=180, resources={"metadata": {"path": cwd}})
        try:
            client.execute(cwd=cwd, env=env)
            failed = None
        except CellExecutionError as exc:
            failed = exc
        finally:
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    print(f"=== {notebook.name}, executed on the embedded Metafold sandbox\n")
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.strip() or cell.metadata.get("demo_setup"):
            continue
        print("\n".join(f">>> {line}" if i == 0 else f"... {line}" for i, line in enumerate(cell.source.splitlines())))
        for output in cell.get("outputs", []):
            text = _text_of(output)
            if text:
                print(text.rstrip())
        print()
    if failed is not None:
        print(f"demo failed: {failed}", file=sys.stderr)
        return 1
    print(f"Open the notebooks yourself:  {HERE.parent / '.venv' / 'bin' / 'jupyter'} lab {HERE}")
    return 0


def _text_of(output: dict) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        return "".join(output.get("text", ""))
    if kind in ("execute_result", "display_data"):
        data = output.get("data", {})
        if "text/plain" in data and "image/png" not in data:
            return "".join(data["text/plain"])
        if "image/png" in data:
            return "[a plot]"
    if kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    return ""


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--in-venv"]:
        sys.exit(run(Path(args[1]) if len(args) > 1 else DEFAULT))
    sys.exit(bootstrap(args))
