"""Issue 9, item 17: a headless run (nbclient, as papermill and nbconvert --execute run
notebooks) with no credentials says how to supply them, instead of showing a login form
nobody can fill."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

pytestmark = pytest.mark.notebooks


def run(tmp_path, *sources: str, allow_errors: bool = True) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFOLD_")}
    env.update(IPYTHONDIR=str(tmp_path / ".ipython"), HOME=str(tmp_path))
    client = NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=allow_errors,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    return nb


def outputs(cell) -> str:
    parts = []
    for out in cell.outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
        else:
            parts.append(" ".join(str(v) for v in out.get("data", {}).values()))
    return "\n".join(parts)


def test_headless_login_without_credentials_says_how_to_supply_them(tmp_path):
    nb = run(tmp_path, "%load_ext metafold_jupyter", "%metafold_login",
             "import metafold_jupyter as mf\ntry:\n    mf.login()\n"
             "except mf.ConfigError as e:\n    print(type(e).__name__, e)")
    magic, python = nb.cells[1], nb.cells[2]
    text = outputs(magic)
    # one line on stderr (how IPython shows a UsageError), and no form waiting for nobody
    assert [(o.output_type, o.get("name")) for o in magic.outputs] == [("stream", "stderr")]
    assert text.startswith("UsageError: ") and text.strip().count("\n") == 0 and "cannot show a login form" in text
    assert "METAFOLD_CLIENT_ID and METAFOLD_CLIENT_SECRET" in text and ".env" in text and "--sandbox" in text
    # the Python API does not try to ask either: its error names every way to log in
    assert outputs(python).startswith("MissingCredentialsError no Metafold credentials")
    assert "--sandbox" in outputs(python)


def test_headless_run_stops_at_the_login_cell(tmp_path):
    with pytest.raises(CellExecutionError) as info:
        run(tmp_path, "%load_ext metafold_jupyter", "%metafold_login", "print('never reached')", allow_errors=False)
    assert "cannot show a login form" in str(info.value)
