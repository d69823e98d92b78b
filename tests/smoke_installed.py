"""Smoke test of metafold-jupyter as users install it: the built wheel, not a checkout.

Not part of the suite (its name does not start with ``test_``): the test command's
``wheel`` stage installs the wheel into a fresh venv, copies this file, demo.py and
the getting-started notebook into a temporary directory outside the checkout and
runs ``python -m pytest smoke_installed.py`` there. So a file missing from the wheel,
a dependency missing from its metadata, or a path that exists only in a checkout
fails here.

Environment set by the stage: SMOKE_CHECKOUT (the checkout, which must not be
importable), SMOKE_WHEEL (the wheel file) and SMOKE_VERSION (the checkout's version).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

CHECKOUT = Path(os.environ["SMOKE_CHECKOUT"]).resolve()
WHEEL = Path(os.environ["SMOKE_WHEEL"])
VERSION = os.environ["SMOKE_VERSION"]
HERE = Path(__file__).resolve().parent
SITE = Path(sysconfig.get_paths()["purelib"]).resolve()

pytestmark = pytest.mark.timeout(300)


def _inside(path: str | Path, parent: Path) -> bool:
    return Path(path).resolve().is_relative_to(parent)


@pytest.fixture
def sandboxed(monkeypatch, tmp_path):
    """A working directory of its own, no METAFOLD_* settings, logged out afterwards."""
    for name in list(os.environ):
        if name.startswith("METAFOLD_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    yield tmp_path
    import metafold_jupyter as mf

    mf.logout()


def test_installed_package_is_the_wheel_not_the_checkout():
    import metafold_jupyter

    assert not _inside(HERE, CHECKOUT), "the smoke test must run outside the checkout"
    assert _inside(metafold_jupyter.__file__, SITE), metafold_jupyter.__file__
    on_path = [p for p in sys.path if p and Path(p).exists() and _inside(p, CHECKOUT)]
    assert not on_path, f"the checkout is on sys.path: {on_path}"
    dist = importlib.metadata.distribution("metafold-jupyter")
    assert dist.read_text("direct_url.json") is None or '"editable": true' not in dist.read_text("direct_url.json")


def test_installed_version_agrees_with_the_checkout_and_the_wheel():
    import metafold_jupyter

    assert metafold_jupyter.__version__ == VERSION
    assert importlib.metadata.version("metafold-jupyter") == VERSION
    assert WHEEL.name.startswith(f"metafold_jupyter-{VERSION}-")


def test_installed_files_include_the_type_marker_and_the_licence():
    files = {f.as_posix() for f in importlib.metadata.files("metafold-jupyter") or []}
    assert "metafold_jupyter/py.typed" in files
    assert any(f.endswith(".dist-info/licenses/LICENSE") for f in files), sorted(files)
    assert "metafold_jupyter/sandbox/__main__.py" in files


def test_installed_every_module_and_public_name_imports():
    import metafold_jupyter as mf

    modules = [m.name for m in pkgutil.walk_packages(mf.__path__, "metafold_jupyter.")]
    assert "metafold_jupyter.sandbox.app" in modules
    for name in modules:
        importlib.import_module(name)
    for name in mf.__all__:
        assert getattr(mf, name) is not None, name


def test_installed_import_stays_cheap():
    probe = ("import sys, metafold_jupyter; "
             "print(sorted(m for m in ('pandas', 'requests', 'IPython', 'werkzeug', 'ipywidgets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_installed_login_to_the_sandbox_and_dataframes(sandboxed):
    import pandas as pd

    import metafold_jupyter as mf

    session = mf.login(sandbox=True)
    assert session.status()["sandbox"] is True
    projects = mf.projects()
    assert isinstance(projects, pd.DataFrame) and len(projects) >= 10
    assert list(projects.columns[:3]) == ["id", "name", "user"]
    assert str(projects["created"].dtype) == "datetime64[ns, UTC]"
    assets = mf.assets()
    path = mf.download_asset(assets["id"].iloc[0], dest=sandboxed, progress=False)
    assert Path(path).stat().st_size == int(assets["size"].iloc[0])


def test_installed_magics_in_an_interactive_shell(sandboxed):
    import pandas as pd
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.extension_manager.load_extension("metafold_jupyter")
        shell.run_line_magic("metafold_login", "--sandbox")
        df = shell.run_line_magic("metafold", "projects --sort name:1")
        assert isinstance(df, pd.DataFrame) and list(df["name"]) == sorted(df["name"])
        assert shell.run_line_magic("metafold", "status")["sandbox"] is True
    finally:
        InteractiveShell.clear_instance()


def test_installed_sandbox_command_line(sandboxed):
    for cmd in ([sys.executable, "-m", "metafold_jupyter.sandbox", "--help"],
                [str(Path(sys.executable).parent / "metafold-sandbox"), "--help"]):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "--port" in out.stdout


def test_installed_sdk_client_when_the_sdk_is_there(sandboxed):
    pytest.importorskip("metafold", reason="the official SDK (Python >= 3.11) is not installed")
    import metafold_jupyter as mf

    mf.login(sandbox=True)
    assert {p.id for p in mf.sdk_client().projects.list()} == set(mf.projects()["id"])


PROBE = """\
import json, sys, metafold_jupyter
print("PROBE " + json.dumps({"package": metafold_jupyter.__file__, "path": sys.path}))
"""


def test_installed_getting_started_notebook_runs_in_a_kernel(sandboxed):
    """The demo command's notebook, as notebooks/demo.py runs it: headless, on the sandbox."""
    import json

    import nbformat
    from jupyter_client import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(HERE / "01-getting-started.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFOLD_")}
    env.update(METAFOLD_SANDBOX="1", MPLBACKEND="Agg")
    # IPC sockets in the test's directory, as demo.py does: the kernel is reachable by no one else
    km = KernelManager(kernel_name="python3", transport="ipc", ip=str(sandboxed / "kernel"))
    NotebookClient(nb, km=km, timeout=180).execute(cwd=str(sandboxed), env=env)
    probe = [o for o in nb.cells[-1].outputs if o.get("name") == "stdout"]
    info = json.loads(probe[0]["text"].split("PROBE ", 1)[1])
    assert _inside(info["package"], SITE), f"the kernel imported {info['package']}"
    assert not [p for p in info["path"] if p and Path(p).exists() and _inside(p, CHECKOUT)]
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def test_installed_demo_script_runs_against_the_installed_package(sandboxed):
    """notebooks/demo.py's in-venv part (what runs after its set-up) prints the notebook's tables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFOLD_")}
    out = subprocess.run([sys.executable, str(HERE / "demo.py"), "--in-venv", str(HERE / "01-getting-started.ipynb")],
                         capture_output=True, text=True, timeout=300, cwd=sandboxed, env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "executed on the embedded Metafold sandbox" in out.stdout
    assert "%metafold projects" in out.stdout or "mf.projects()" in out.stdout
