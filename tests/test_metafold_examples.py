"""Metafold's own example workflows, as published, through the Python API and the cell magic.

The YAML files are the official SDK repository's ``workflows/sample-mesh.yml`` and
``workflows/export-mesh.yml`` (kept unchanged in ``notebooks/workflows/``). They run
on the sandbox with their real job types; their output assets download and check.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from test_magics import dotenv, logged_in, shell  # noqa: F401 - fixtures

import metafold_jupyter as mf

pytestmark = pytest.mark.timeout(120)

EXAMPLES = Path(__file__).resolve().parent.parent / "notebooks" / "workflows"
SAMPLE_MESH = EXAMPLES / "sample-mesh.yml"
EXPORT_MESH = EXAMPLES / "export-mesh.yml"


def test_examples_are_kept_unchanged_with_their_source_and_licence():
    for path in (SAMPLE_MESH, EXPORT_MESH):
        text = path.read_text()
        header = [line for line in text.splitlines() if line.startswith("#")]
        assert any("Metafold3d/metafold-python/blob/" in line and f"workflows/{path.name}" in line for line in header)
        assert any("MIT licence" in line for line in header)
        body = [line for line in text.splitlines() if not line.startswith("#")]
        assert body[0] == "---" and body[-1] == "..."  # the published file, from its first line to its last
    assert "Permission is hereby granted" in (EXAMPLES / "LICENSE-metafold-python").read_text()


def by_name(jobs):
    return jobs.set_index("name")


def test_examples_sample_mesh_through_run_workflow(session, tmp_path):
    jobs = mf.run_workflow(SAMPLE_MESH, assets={"preprocess-mesh.mesh": "icosahedron.stl"}, progress=False)
    assert list(jobs["name"]) == ["preprocess-mesh", "compute-bvh", "sample-mesh"]
    assert set(jobs["state"]) == {"success"}
    jobs = by_name(jobs)
    sample = jobs.loc["sample-mesh"]
    assert sample["inputs"]["assets"]["mesh"]["id"] == jobs.loc["preprocess-mesh", "outputs"]["assets"]["mesh"]["id"]
    assert sample["inputs"]["assets"]["bvh"]["id"] == jobs.loc["compute-bvh", "outputs"]["assets"]["bvh"]["id"]
    resolution = json.loads(sample["outputs"]["params"]["patch_resolution"])
    volume = sample["outputs"]["assets"]["volume"]
    path = mf.download_asset(volume["id"], dest=tmp_path, progress=False)
    assert path.stat().st_size == volume["size"] == 40 + 4 * resolution[0] * resolution[1] * resolution[2]


def test_examples_export_mesh_through_run_workflow(session, tmp_path):
    jobs = by_name(mf.run_workflow(EXPORT_MESH.read_text(), progress=False))
    assert set(jobs["state"]) == {"success"}
    export = jobs.loc["export-mesh"]
    mesh = export["outputs"]["assets"]["mesh"]
    data = mf.download_asset(mesh["id"], dest=tmp_path, progress=False).read_bytes()
    (count,) = struct.unpack_from("<I", data, 80)
    assert len(data) == 84 + 50 * count and count == int(export["outputs"]["params"]["triangles"])
    assert export["outputs"]["params"]["watertight"] == "true"


def test_examples_sample_mesh_through_the_cell_magic(logged_in):  # noqa: F811
    jobs = logged_in.run_cell_magic(
        "metafold", "run --asset preprocess-mesh.mesh=cube.stl --param sample-mesh.resolution=24 -o sampled",
        SAMPLE_MESH.read_text())
    assert set(jobs["state"]) == {"success"} and logged_in.user_ns["sampled"] is jobs
    sample = by_name(jobs).loc["sample-mesh"]
    assert sample["inputs"]["params"] == {"resolution": "24"}
    assert json.loads(sample["outputs"]["params"]["patch_resolution"]) == [24, 24, 24]
    # its volume feeds a later run by filename, as a later job of a real account would use it
    volume_file = sample["outputs"]["assets"]["volume"]["filename"]
    remeshed = logged_in.run_cell_magic(
        "metafold", f"run --asset remesh.volume={volume_file}", "jobs:\n  remesh:\n    type: mesh/from-volume\n")
    params = by_name(remeshed).loc["remesh", "outputs"]["params"]
    assert 900 < float(params["volume"]) <= 1000  # the 10 mm cube, sampled at 24 and meshed again


def test_examples_export_mesh_through_the_cell_magic(logged_in, tmp_path):  # noqa: F811
    jobs = logged_in.run_cell_magic("metafold", "run", EXPORT_MESH.read_text())
    assert list(jobs["name"]) == ["evaluate-graph", "export-mesh"] and set(jobs["state"]) == {"success"}
    mesh_id = by_name(jobs).loc["export-mesh", "outputs"]["assets"]["mesh"]["id"]
    path = logged_in.run_line_magic("metafold", f"download {mesh_id} {tmp_path}")
    assert path.stat().st_size > 84


def test_examples_missing_input_is_one_clear_line(logged_in, capsys):  # noqa: F811
    logged_in.run_line_magic("config", "MetafoldMagics.progress = False")
    result = logged_in.run_cell(
        "%%metafold run --asset preprocess-mesh.mesh=suzanne.obj\n" + SAMPLE_MESH.read_text(), store_history=True)
    out = capsys.readouterr()
    lines = [line for line in (out.out + out.err).splitlines() if line.strip()]
    assert len(lines) == 1 and "HTTP 400" in lines[0] and "suzanne.obj" in lines[0], lines
    assert result.error_in_exec is not None
