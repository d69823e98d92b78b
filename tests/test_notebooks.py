"""The teaching notebooks and their Binder set-up.

Every notebook runs top to bottom in a real kernel (nbclient, kernel "python3"), twice:

- the Binder path: ``METAFOLD_SANDBOX=1`` and no credentials, so the kernel logs in to its
  own embedded sandbox;
- the real-account path: the kernel gets ``METAFOLD_*`` settings pointing at the test's
  sandbox, exactly as a user's account would be configured. Because that sandbox lives in
  this process, the test knows every token it issued and can prove none of them (nor the
  client secret) appears anywhere in the executed notebook.

A probe cell appended to each executed copy reports which package the kernel imported
and where its session points, so a notebook cannot pass against the wrong code or account;
it also hands over a few of the notebook's DataFrames (the design study and its mesh metrics),
so their checks read the data rather than its printed form.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from helpers import leaks, secrets_of
from nbclient import NotebookClient

import metafold_jupyter
from metafold_jupyter.sandbox import SANDBOX_CLIENT_SECRET

pytestmark = pytest.mark.notebooks

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
BINDER = ROOT / "binder"
CELL_TIMEOUT = 120  # seconds per cell
JWT = re.compile(r"eyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]+")

PROBE = """\
import json as _json
import metafold_jupyter as _mf
from metafold_jupyter import kernel_session as _ks

_session = _ks.current_session()
_states = {
    _name: [str(s) for s in _value["state"]]
    for _name, _value in dict(globals()).items()
    if _name in ("jobs", "failed") and hasattr(_value, "columns") and "state" in _value.columns
}
_frames = {  # the design study and its mesh metrics, for checks against the data, not its print-out
    _name: {"dtypes": {str(k): str(v) for k, v in _value.dtypes.items()},
            **_json.loads(_value.to_json(orient="split", index=False, date_format="iso", default_handler=str))}
    for _name, _value in dict(globals()).items()
    if _name in ("study", "meshes") and hasattr(_value, "to_json")
}
print("PROBE " + _json.dumps({
    "package": _mf.__file__,
    "logged_in": _session is not None,
    "sandbox": bool(_session and _session.sandbox),
    "base_url": _session.base_url if _session else None,
    "states": _states,
    "frames": _frames,
}))
"""


def _ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


# -- running notebooks ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mpl_config_dir(tmp_path_factory) -> str:
    """One matplotlib config/cache dir for every kernel, so the font cache is built once."""
    return str(tmp_path_factory.mktemp("matplotlib"))


def execute(path: Path, workdir: Path, settings: dict[str, str], mpl_dir: str) -> nbformat.NotebookNode:
    """Run a notebook (plus the probe cell) in a fresh python3 kernel whose cwd is ``workdir``.

    The kernel's environment is this process's without any METAFOLD_* variable (and without a
    forced matplotlib backend, so figures render inline), plus ``settings``.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised; the message shows which.
    """
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PROBE))
    env = {k: v for k, v in os.environ.items() if not k.startswith("METAFOLD_") and k != "MPLBACKEND"}
    env.update(IPYTHONDIR=str(workdir / ".ipython"), MPLCONFIGDIR=mpl_dir, **settings)
    client = NotebookClient(
        nb, kernel_name="python3", timeout=CELL_TIMEOUT, resources={"metadata": {"path": str(workdir)}}
    )
    try:
        client.execute(env=env)
    finally:
        nbformat.write(nb, workdir / f"executed-{path.name}")  # kept in pytest's tmp dir for debugging
    return nb


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


def texts(cell: nbformat.NotebookNode, stream: str | None = None) -> str:
    """The text a cell showed: its streams (only ``stream`` if given) and text/plain + text/html."""
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            if stream in (None, out.name):
                parts.append(out.text)
        elif stream is None and out.output_type in ("execute_result", "display_data"):
            parts += [out.data.get("text/plain", ""), out.data.get("text/html", "")]
    return "\n".join(parts)


def cell(nb: nbformat.NotebookNode, source_start: str) -> nbformat.NotebookNode:
    """The first code cell whose source starts with ``source_start``."""
    for c in code_cells(nb):
        if c.source.startswith(source_start):
            return c
    raise AssertionError(f"no code cell starts with {source_start!r}")


def probe(nb: nbformat.NotebookNode) -> dict:
    line = next(line for line in texts(nb.cells[-1], "stdout").splitlines() if line.startswith("PROBE "))
    return json.loads(line.removeprefix("PROBE "))


def probe_frame(nb: nbformat.NotebookNode, name: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """A DataFrame the notebook left in ``name`` (as the probe saw it) and its dtypes there."""
    info = probe(nb)["frames"][name]
    return pd.DataFrame(info["data"], columns=info["columns"]), info["dtypes"]


def check_runs_clean(nb: nbformat.NotebookNode) -> None:
    """No error output anywhere, and stderr only where a notebook shows a failure on purpose."""
    for c in code_cells(nb):
        kinds = [o.output_type for o in c.outputs]
        assert "error" not in kinds, f"error output in cell:\n{c.source}"
        if "sandbox/fail" not in c.source:
            assert not texts(c, "stderr"), f"unexpected stderr in cell:\n{c.source}\n---\n{texts(c, 'stderr')}"


def images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in code_cells(nb) for o in c.outputs)


def check_login(nb: nbformat.NotebookNode, where: str) -> None:
    """The probe and the login line agree on where the kernel logged in.

    Args:
        where: "sandbox" (the kernel's embedded sandbox) or "account" (env credentials).
    """
    info = probe(nb)
    assert info["package"] == metafold_jupyter.__file__, "the kernel imported another metafold_jupyter"
    assert info["logged_in"]
    login = texts(next(c for c in code_cells(nb) if "%metafold_login" in c.source))
    source = {"sandbox": "sandbox", "account": "environment"}[where]
    if where == "sandbox":
        assert info["sandbox"]
        assert "Logged in to the embedded Metafold sandbox at http://127.0.0.1" in login
    else:
        # configured like an account; the status line still says "sandbox" (the test's
        # sandbox has the public sandbox client ID), so the origin and the source are checked
        assert re.search(r"Logged in to (the )?Metafold (sandbox )?at http://127\.0\.0\.1:\d+ ", login), login
        assert f"(credentials from {source})" in login
    assert "project 3" in login
    for status in (c for c in code_cells(nb) if c.source.startswith("%metafold status")):
        assert re.search(rf"^source\s+{source}$", texts(status), re.MULTILINE), texts(status)


def check_getting_started(nb: nbformat.NotebookNode) -> None:
    assert "Sandbox playground" in texts(cell(nb, "%metafold projects"))
    heat = texts(cell(nb, "%metafold projects --q"))
    assert "Gyroid heat exchanger" in heat and "Heat sink comparison" in heat and "TPMS" not in heat
    for key in ("project", "import", "export", "simulation"):
        assert key in texts(cell(nb, "%metafold quota"))
    assert "Metafold Pro (sandbox)" in texts(cell(nb, "%metafold license"))
    scratch = texts(cell(nb, "scratch = %metafold create"))
    assert "Scratch for getting started" in scratch and "private" in scratch
    assert "Scratch copy" in texts(cell(nb, "copy = %metafold duplicate"))
    assert "Scratch copy, renamed" in texts(cell(nb, "mf.update_project("))
    assert "Deleted project " in texts(cell(nb, "%metafold delete project"), "stdout")
    assert "scratch projects left: 0" in texts(cell(nb, "mf.delete_project("))


def check_account_analysis(nb: nbformat.NotebookNode) -> None:
    assert images(nb) >= 4, f"expected the 4 charts, got {images(nb)} images"
    assert "used %" in texts(cell(nb, "budget = "))
    assert "digital_test_bench_experiment" in texts(cell(nb, "by_access = "))


def check_assets_and_workflows(nb: nbformat.NotebookNode) -> None:
    states = probe(nb)["states"]
    assert states["jobs"] == ["success"] * 4
    assert states["failed"] == ["success", "failure", "canceled"]
    assert "checksums match: True" in texts(cell(nb, "mesh_id = "))
    assert "matches the API's checksum: True" in texts(cell(nb, "asset = "))
    peek = texts(cell(nb, "data = path.read_bytes()"))
    counted = re.search(r"triangles in the file: (\d+)\ntriangles reported by the job: (\d+)", peek)
    assert counted and counted[1] == counted[2] and int(counted[1]) > 4, peek  # a real remesh, not a constant
    assert "= 84 + 50 x" in peek and ": True" in peek
    # Metafold's sample-mesh.yml, cell body exactly the published file (our copy minus its comment header)
    published = "".join(line for line in (NOTEBOOK_DIR / "workflows" / "sample-mesh.yml").read_text()
                        .splitlines(keepends=True) if not line.startswith("#"))
    example = cell(nb, "%%metafold run --asset preprocess-mesh.mesh=")
    assert example.source.split("\n", 1)[1] + "\n" == published
    assert "patch_resolution" in texts(cell(nb, "example_outputs = "))
    assert texts(cell(nb, "example_outputs = ")).count("success") == 3
    warning = texts(next(c for c in code_cells(nb) if "sandbox/fail" in c.source), "stderr")
    assert "ended in failure" in warning and "Simulated failure" in warning
    assert "HTTP 400" in texts(cell(nb, "broken = "))
    assert images(nb) >= 3  # the tetrahedron, the timeline and the remeshed result
    # the 3D views: the interactive figure and its picture, in one output each
    for source, title in (("%metafold show", "tetrahedron-"), ('mf.show(result["id"])', "remesh-")):
        (out,) = [o for o in cell(nb, source).outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
        assert "image/png" in out.data
        assert title in out.data["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    # the view shows the remeshed result's own triangles, all of them (a reduced view says "M of N faces")
    (view,) = [o for o in cell(nb, 'mf.show(result["id"])').outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    title = view.data["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
    assert f"<sub>{int(counted[1]):,} faces · " in title, title
    compared = texts(cell(nb, "compared = "))
    assert "tetrahedron-" in compared and "remesh-" in compared and "preprocess-" in compared
    assert "volume 166.7 mm³" in texts(cell(nb, "tetra = ")) and "closed: True" in texts(cell(nb, "tetra = "))
    assert "torus.ply" in texts(cell(nb, "every = ")) and "gear.glb" in texts(cell(nb, "every = "))


def check_design_study(nb: nbformat.NotebookNode) -> None:
    design = texts(cell(nb, "design = mf.grid("))
    assert "sample.thickness" in design and "sample.resolution" in design and "\n7 " in design  # 8 runs
    study = texts(cell(nb, "study = mf.run_workflows("))
    assert "workflow_id" in study and "success" in study and "[8 rows x" in study
    chosen = texts(cell(nb, 'study[["sample.thickness", "sample.resolution", "state"'))
    assert "metrics.volume" in chosen and "mesh.triangles" in chosen and "failure" not in chosen
    checks = texts(cell(nb, 'print("every run succeeded'), "stdout")
    assert "every run succeeded: True" in checks and "volume rises with thickness at every resolution: True" in checks
    assert "difference %" in texts(cell(nb, "convergence = "))
    sweep = texts(cell(nb, "%%metafold sweep --param sample.cell_size=5,10,20"))
    assert "sample.cell_size" in sweep and "metrics.area" in sweep and "failure" not in sweep
    assert "smaller cells, more area: True" in texts(cell(nb, 'print(cells[['), "stdout")
    failures = texts(cell(nb, "per_project = ("))
    assert "Sandbox playground" in failures and "failed %" in failures
    months = texts(cell(nb, "ran = account_jobs.dropna("))
    assert re.search(r"20\d\d-\d\d", months) and "Sandbox playground" in months
    assert images(nb) >= 5  # volume scatter, volume/area by resolution, compute per month, 2 meshes
    # the place the geometry work fills in: a heading near the end, after the account section
    headings = [c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown"]
    assert "## 7. Look at the meshes" in headings
    assert headings.index("## 7. Look at the meshes") > headings.index(
        "## 6. The whole account: failures and compute time")
    assert "mesh.mesh" in texts(cell(nb, 'study[["run", "sample.thickness"'))
    check_design_study_meshes(nb)


#: mf.mesh_metrics' columns and dtypes (interface.md; README "3D views and mesh metrics").
MESH_METRIC_DTYPES = {
    "asset_id": "string", "filename": "string", "faces": "int64", "vertices": "int64", "watertight": "bool",
    **{name: "float64" for name in ("volume", "area", "min_x", "min_y", "min_z", "max_x", "max_y", "max_z")},
}


def check_design_study_meshes(nb: nbformat.NotebookNode) -> None:
    """Section 7: the runs' meshes measured next to their parameters, and two of them in 3D."""
    study, _ = probe_frame(nb, "study")
    meshes, dtypes = probe_frame(nb, "meshes")
    assert dtypes == MESH_METRIC_DTYPES  # every column, in order, typed
    # one row per run, in the study's order, each the mesh that run's job reported
    assert len(meshes) == len(study) == 8
    assert meshes["asset_id"].tolist() == study["mesh.mesh"].astype(str).tolist()
    assert meshes["faces"].tolist() == study["mesh.triangles"].tolist()
    assert meshes["watertight"].all() and (meshes["vertices"] > 0).all()
    # the 20 mm box: every lattice fills it
    for axis in "xyz":
        assert ((meshes[f"max_{axis}"] - meshes[f"min_{axis}"]).between(19, 21)).all()
    # measured locally, the mesh's volume and area are the metrics job's (one field, two routes)
    assert ((meshes["volume"] / study["metrics.volume"] - 1).abs() < 1e-4).all()
    assert ((meshes["area"] / study["metrics.area"] - 1).abs() < 1e-3).all()
    # and they follow the parameters: more wall, more volume, at each resolution
    joined = study[["sample.thickness", "sample.resolution"]].join(meshes[["faces", "volume"]])
    for _, runs in joined.groupby("sample.resolution"):
        ordered = runs.sort_values("sample.thickness")
        assert ordered["volume"].is_monotonic_increasing and ordered["volume"].is_unique
    fine, coarse = (joined[joined["sample.resolution"] == r].set_index("sample.thickness") for r in (24, 16))
    assert (fine["faces"] > coarse["faces"]).all()  # the finer grid, the more faces
    table = texts(cell(nb, "meshes = mf.mesh_metrics("))
    assert "watertight" in table and "volume" in table and "sample.thickness" in table
    checks = texts(cell(nb, "gap = "), "stdout")
    assert "every mesh is closed: True" in checks and "the same: True" in checks
    # the two views: thinnest and thickest walls on the finer grid, each interactive and a picture
    picked = study[study["sample.resolution"] == 24].set_index("sample.thickness")
    for source, thickness in (('mf.show(fine.loc[0.5, "mesh.mesh"])', 0.5), ('mf.show(fine.loc[2.0,', 2.0)):
        view = next(c for c in code_cells(nb) if source in c.source)
        (out,) = [o for o in view.outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
        title = out.data["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
        assert f"(asset {picked.loc[thickness, 'mesh.mesh']})" in title, title
        assert f"<sub>{int(picked.loc[thickness, 'mesh.triangles']):,} faces · " in title, title  # all, none reduced
        png = base64.b64decode(out.data["image/png"])
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


#: Meaningful outputs per notebook, so that none can pass by showing nothing.
EXPECTATIONS = {
    "01-getting-started.ipynb": check_getting_started,
    "02-account-analysis.ipynb": check_account_analysis,
    "03-assets-and-workflows.ipynb": check_assets_and_workflows,
    "04-design-study.ipynb": check_design_study,
}


def test_notebook_set_is_complete():
    assert [p.name for p in NOTEBOOKS] == sorted(EXPECTATIONS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_on_binder_sandbox(path, tmp_path, mpl_config_dir):
    """The Binder path: METAFOLD_SANDBOX=1, no credentials, no .env -> the embedded sandbox."""
    nb = execute(path, tmp_path, {"METAFOLD_SANDBOX": "1"}, mpl_config_dir)

    check_runs_clean(nb)
    check_login(nb, "sandbox")
    EXPECTATIONS[path.name](nb)
    # the kernel's own sandbox issued its tokens out of our sight: no JWT may show anywhere
    text = nbformat.writes(nb)
    assert leaks([text], [SANDBOX_CLIENT_SECRET]) == []
    assert not JWT.search(text), "a JWT-shaped token appears in the executed notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_with_account_settings_leaks_nothing(path, tmp_path, mpl_config_dir, sandbox):
    """The same notebook, configured like a real account (env vars), shows no secret or token."""
    nb = execute(path, tmp_path, sandbox.env(), mpl_config_dir)

    check_runs_clean(nb)
    check_login(nb, "account")
    EXPECTATIONS[path.name](nb)
    assert probe(nb)["base_url"] == sandbox.url + "/"
    secrets = secrets_of(sandbox)
    assert len(secrets) >= 2, "the kernel never exchanged a token with the test's sandbox"
    text = nbformat.writes(nb)  # every output, the widget state and the metadata
    assert leaks([text], secrets) == []
    assert not JWT.search(text), "a JWT-shaped token appears in the executed notebook"


# -- committed notebooks -------------------------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_notebook_has_no_outputs(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    assert raw["metadata"]["kernelspec"]["name"] == "python3"
    assert "widgets" not in raw["metadata"]
    cells = raw["cells"]
    assert any(c["cell_type"] == "markdown" for c in cells) and any(c["cell_type"] == "code" for c in cells)
    for c in cells:
        assert "widgets" not in c.get("metadata", {})
        if c["cell_type"] == "code":
            assert c["outputs"] == [], f"outputs committed in:\n{''.join(c['source'])}"
            assert c["execution_count"] is None
    source = "".join("".join(c["source"]) for c in cells)
    assert SANDBOX_CLIENT_SECRET not in source and not JWT.search(source)
    # log in the plain way, so that Binder (the sandbox) and a .env account both work unchanged
    logins = [
        line.strip()
        for c in cells
        if c["cell_type"] == "code"
        for line in "".join(c["source"]).splitlines()
        if line.strip().startswith("%metafold_login")
    ]
    assert logins == ["%metafold_login"]


# -- Binder ----------------------------------------------------------------------------------


def run_binder_start(tmp_path: Path, settings: dict[str, str], dotenv: str | None = None, *,
                     git: bool = False, mode: int = 0o600) -> dict[str, str]:
    """Run a copy of binder/start as repo2docker would (cwd = the repository), with ``env`` as the command.

    Args:
        dotenv: where to put a .env, relative to the copied repository ("." , "notebooks", "..").
        git: make the copy a repository root (a .git folder), where the search stops.
        mode: the .env's permissions.
    """
    repo = tmp_path / "home" / "repo"
    (repo / "binder").mkdir(parents=True)
    (repo / "notebooks").mkdir()
    if git:
        (repo / ".git").mkdir()
    shutil.copy2(BINDER / "start", repo / "binder" / "start")
    if dotenv is not None:
        (repo / dotenv / ".env").write_text("METAFOLD_PROJECT_ID=1\n")
        (repo / dotenv / ".env").chmod(mode)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"), **settings}
    done = subprocess.run(
        ["bash", "binder/start", "env"], cwd=repo, env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


@pytest.mark.parametrize(
    ("settings", "dotenv", "expected"),
    [
        ({}, None, "1"),
        ({"METAFOLD_CLIENT_ID": "my-id"}, None, "1"),  # half a pair is no credentials
        ({"METAFOLD_CLIENT_ID": "my-id", "METAFOLD_CLIENT_SECRET": "my-secret"}, None, None),
        ({"METAFOLD_ACCESS_TOKEN": "issued-token"}, None, None),
        ({}, ".", None),
        ({}, "notebooks", None),
        ({}, "..", None),
        ({"METAFOLD_SANDBOX": "0"}, None, "0"),  # an explicit choice is kept
    ],
    ids=["nothing", "id-only", "env-pair", "access-token", "dotenv-repo", "dotenv-notebooks", "dotenv-above",
         "explicit"],
)
def test_binder_start_turns_on_sandbox_only_without_credentials(tmp_path, settings, dotenv, expected):
    env = run_binder_start(tmp_path, settings, dotenv)

    assert env.get("METAFOLD_SANDBOX") == expected
    assert env["HOME"] == str(tmp_path / "home")  # it exec'd the command with the environment intact
    for key, value in settings.items():
        assert env[key] == value


@pytest.mark.parametrize(("dotenv", "git", "mode"), [("../..", False, 0o600), ("..", True, 0o600), (".", False, 0o666)],
                         ids=["above-home", "above-repository-root", "writable-by-others"])
def test_binder_start_looks_for_a_dotenv_where_the_library_would(tmp_path, dotenv, git, mode):
    # the library stops at the home directory or a repository root and skips untrusted files;
    # a .env it would not read must not switch the sandbox off either
    env = run_binder_start(tmp_path, {}, dotenv, git=git, mode=mode)
    assert env.get("METAFOLD_SANDBOX") == "1"


def test_binder_start_is_an_executable_entrypoint(tmp_path):
    script = BINDER / "start"
    assert script.stat().st_mode & stat.S_IXUSR, "binder/start must be executable"
    lines = [line.strip() for line in script.read_text().splitlines() if line.strip()]
    assert lines[0].startswith("#!") and lines[-1] == 'exec "$@"'
    repo = tmp_path / "repo"
    (repo / "binder").mkdir(parents=True)
    shutil.copy2(script, repo / "binder" / "start")
    done = subprocess.run(["bash", "binder/start", "sh", "-c", "exit 7"], cwd=repo, env={"PATH": os.environ["PATH"]},
                          timeout=30)
    assert done.returncode == 7  # the server command's exit status passes through


def test_binder_installs_this_package_with_notebook_extras():
    tomllib = pytest.importorskip("tomllib")
    requirements = [
        line.split("#", 1)[0].strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
    ]
    assert ".[notebooks,3d]" in requirements  # pip resolves "." against repo2docker's cwd: the repository root
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(req.startswith("matplotlib") for req in extras["notebooks"])
    assert "metafold-jupyter[3d]" in extras["notebooks"]  # the 3D views wherever the notebooks run
    assert {"trimesh", "plotly", "fast-simplification", "matplotlib"} <= {
        req.split(">")[0].split("=")[0] for req in extras["3d"]
    }
