"""The sandbox's job computations on their own: mesh files, sampled volumes, isosurfaces, BVH, job kinds.

The workflow tests (test_sandbox_workflows.py) check the same numbers through the API;
these pin the pieces down directly and fast, including the inputs users upload.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from metafold_jupyter.sandbox import implicit, jobtypes, meshes, meshio

CUBE_STL = meshes.stl_ascii("cube", meshes.cube_triangles(10.0))
TETRA_PLY_ASCII = b"""ply
format ascii 1.0
comment a unit tetrahedron, with an extra vertex property and a quad-free face list
element vertex 4
property float x
property float y
property float z
property uchar red
element face 4
property list uchar int vertex_indices
end_header
0 0 0 255
1 0 0 0
0 1 0 0
0 0 1 0
3 0 2 1
3 0 1 3
3 0 3 2
3 1 2 3
"""


def test_meshio_reads_every_seeded_format():
    cases = {
        "cube.stl": (CUBE_STL, 1000.0, 12),
        "ico.stl": (meshes.stl_binary("ico", meshes.icosahedron_triangles()), None, 20),
        "bracket.obj": (meshes.bracket_obj(), 40 * 5 * 20 + 5 * 25 * 20, 20),
        "tetra.ply": (TETRA_PLY_ASCII, 1 / 6, 4),
    }
    for name, (data, volume, triangles) in cases.items():
        vertices, faces = meshio.read_mesh(data, name)
        stats = meshio.mesh_stats(vertices, faces)
        assert stats.triangles == triangles and stats.watertight, name
        if volume is not None:
            assert stats.volume == pytest.approx(volume), name


def test_meshio_obj_polygons_and_negative_indices():
    obj = b"v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\nf -4 -2 -1\n"
    vertices, faces = meshio.read_mesh(obj, "quad.obj")
    assert len(vertices) == 4 and faces.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]


@pytest.mark.parametrize("fmt", meshio.MESH_FORMATS)
def test_meshio_writes_what_it_reads(fmt):
    volume = implicit.lattice_volume("sphere", (10, 10, 10), 5, 1, (12, 12, 12))
    vertices, faces = implicit.isosurface(volume)
    again = meshio.read_mesh(meshio.write_mesh(vertices, faces, fmt, "ball"), f"ball.{fmt}")
    before, after = meshio.mesh_stats(vertices, faces), meshio.mesh_stats(*again)
    assert after.triangles == before.triangles and after.watertight
    assert after.volume == pytest.approx(before.volume, rel=1e-5)


@pytest.mark.parametrize(
    ("data", "fragment"),
    [(b"hello, not a mesh", "not a mesh file"), (b"ply\nformat ascii 1.0\nend_header\n", "no vertex or face"),
     (b"v 0 0 0\nf 1 2 3\n", "missing vertex"), (b"solid x\nfacet normal 0 0 1\n vertex 0 0 0\n vertex 1 0 0\n vertex 0 1 none\n", "not a number")],
)
def test_meshio_rejects_what_is_not_a_mesh(data, fragment):
    with pytest.raises(meshio.MeshError, match=fragment):
        meshio.read_mesh(data, "upload.bin")


def test_meshio_watertight_needs_closed_and_consistent():
    vertices, faces = meshio.read_mesh(CUBE_STL)
    assert not meshio.mesh_stats(vertices, faces[:-1]).watertight  # a hole
    flipped = faces.copy()
    flipped[0] = flipped[0, ::-1]
    assert not meshio.mesh_stats(vertices, flipped).watertight  # one face wound the wrong way


def test_meshio_bvh_covers_every_triangle_once():
    volume = implicit.lattice_volume("gyroid", (10, 10, 10), 5, 1, (10, 10, 10))
    vertices, faces = implicit.isosurface(volume)
    data, info = meshio.build_bvh(vertices, faces, leaf_size=8)
    count = int(np.frombuffer(data, "<u4", 1, 8)[0])
    table = np.frombuffer(data, [("bounds", "<f4", (6,)), ("links", "<i4", (4,))], count, 12)
    order = np.frombuffer(data, "<i4", offset=12 + table.nbytes)
    assert count == info["nodes"] and sorted(order.tolist()) == list(range(len(faces)))
    leaves = table[table["links"][:, 0] < 0]
    assert len(leaves) == info["leaves"] and leaves["links"][:, 3].sum() == len(faces)
    assert (leaves["links"][:, 3] <= 8).all() and info["depth"] >= math.log2(len(faces) / 8)
    root = table["bounds"][0]
    corners = vertices[faces].reshape(-1, 3)
    assert (root[:3] <= corners.min(axis=0) + 1e-4).all() and (root[3:] >= corners.max(axis=0) - 1e-4).all()


def test_implicit_volume_file_round_trip_and_raw_samples():
    volume = implicit.lattice_volume("diamond", (10, 8, 6), 5, 1, (9, 8, 7))
    data = implicit.encode_volume(volume)
    again = implicit.decode_volume(data)
    assert again.resolution == (11, 10, 9) and np.array_equal(again.values, volume.values)
    assert again.offset == pytest.approx(volume.offset) and again.size == pytest.approx(volume.size)
    raw = np.asarray(volume.values, "<f4").tobytes(order="F")
    with pytest.raises(implicit.VolumeError, match="volume_resolution"):
        implicit.decode_volume(raw)
    plain = implicit.decode_volume(raw, resolution=[11, 10, 9], size=list(volume.size))
    assert np.array_equal(plain.values, volume.values) and (plain.offset == 0).all()
    with pytest.raises(implicit.VolumeError, match="needs"):
        implicit.decode_volume(raw, resolution=[10, 10, 10])


def test_implicit_isosurface_is_closed_and_converges():
    errors = []
    for n in (8, 16, 32):
        vertices, faces = implicit.isosurface(implicit.lattice_volume("sphere", (20, 20, 20), 10, 1, (n, n, n), 8))
        stats = meshio.mesh_stats(vertices, faces)
        assert stats.watertight
        errors.append(abs(stats.volume - 4 / 3 * math.pi * 8 ** 3))
    assert errors[0] > errors[1] > errors[2]


def test_implicit_isosurface_caps_a_solid_that_fills_the_patch():
    full = implicit.Volume(values=-np.ones((5, 5, 5), np.float32), offset=np.zeros(3), size=np.full(3, 4.0))
    vertices, faces = implicit.isosurface(full)
    stats = meshio.mesh_stats(vertices, faces)
    assert stats.watertight and stats.volume == pytest.approx(4 ** 3, rel=0.01)  # capped at the border
    empty = implicit.Volume(values=np.ones((5, 5, 5), np.float32), offset=np.zeros(3), size=np.full(3, 4.0))
    assert len(implicit.isosurface(empty)[1]) == 0


def test_implicit_mesh_volume_reproduces_the_mesh():
    vertices, faces = meshio.read_mesh(meshes.bracket_obj())
    sampled = implicit.mesh_volume(vertices, faces, 48)
    again = meshio.mesh_stats(*implicit.isosurface(sampled))
    assert again.watertight and again.volume == pytest.approx(6500, rel=0.03)
    with pytest.raises(implicit.VolumeError, match="at least 8"):
        implicit.mesh_volume(vertices, faces, 6)


def test_jobtypes_kinds_say_what_they_read_make_and_count():
    assert jobtypes.kind_of("mesh/from-volume").counts == "export"
    assert jobtypes.kind_of("sim/custom").counts == jobtypes.kind_of("sim/postprocess/stress").counts == "simulation"
    assert jobtypes.kind_of("implicit/evaluate").counts is None
    assert jobtypes.kind_of("implicit/from-mesh").inputs == ("mesh", "bvh")
    assert jobtypes.kind_of("mesh/compute-bvh").outputs == ("bvh",)
    assert jobtypes.kind_of("vendor/anything").outputs == ("log",)


def test_jobtypes_results_are_computed_once_per_content(tmp_path):
    cache = jobtypes.ResultCache(max_entries=8)
    params = {"thickness": "0.8", "resolution": "10"}
    first = jobtypes.run_job("implicit/evaluate", params, {}, "sample", cache)
    assert jobtypes.run_job("implicit/evaluate", dict(params), {}, "sample", cache) == first
    assert len(cache._items) == 1
    other = jobtypes.run_job("implicit/evaluate", {**params, "thickness": "1.2"}, {}, "sample", cache)
    assert other[1]["volume"][1] != first[1]["volume"][1]


def test_jobtypes_result_cache_is_bounded():
    cache = jobtypes.ResultCache(max_entries=3, max_bytes=100)
    calls = []
    for key in range(5):
        cache.get_or_compute(key, lambda k=key: calls.append(k) or b"x" * 30, len)
    assert len(cache._items) == 3 and cache._bytes == 90
    cache.get_or_compute(4, lambda: calls.append("again"), len)
    assert "again" not in calls
    cache.get_or_compute("big", lambda: b"x" * 500, len)  # larger than the cache: returned, not kept
    assert "big" not in cache._items


def test_bench_sandbox_jobs_runs(capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
    import bench_sandbox_jobs

    result = bench_sandbox_jobs.main(["--resolution", "12", "--thickness", "0.5", "1.5"])
    assert result["volumes"] == sorted(result["volumes"]) and result["cpu_max_s"] > 0
    assert "CPU per workflow" in capsys.readouterr().out


def test_implicit_isosurface_treats_missing_samples_as_outside():
    values = np.full((6, 6, 6), 1.0, np.float32)
    values[1:5, 1:5, 1:5] = -1.0
    values[0, 0, 0] = np.nan
    values[5, 5, 5] = np.inf
    vertices, faces = implicit.isosurface(implicit.Volume(values=values, offset=np.zeros(3), size=np.full(3, 5.0)))
    stats = meshio.mesh_stats(vertices, faces)
    assert stats.watertight and np.isfinite(vertices).all() and stats.volume == pytest.approx(4 ** 3, rel=0.2)
