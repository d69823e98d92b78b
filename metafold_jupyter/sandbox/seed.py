"""Deterministic demo data: projects, real mesh assets, finished jobs and workflows.

Everything here is fixed (names, dates, bytes), so every sandbox starts from the
same account; only the IDs of resources created later depend on what a session
does. Summary (IDs as the API shows them):

- projects 1-11 created between January and September 2025; project 5 belongs
  to another user and is never visible. Project 3, "Sandbox playground", is the
  default project.
- playground assets: ``cube.stl`` (ASCII STL, 12 facets), ``bracket.obj``
  (L-bracket), ``icosahedron.stl`` (binary STL, 20 facets), the outputs of its
  workflows, then ``torus.ply`` (binary PLY, 1,024 faces) and ``gear.glb`` (binary
  glTF, 192 faces, units mm): every mesh format a viewer reads.
- playground workflow 1 "cube pipeline" (success: mesh/preprocess →
  implicit/from-mesh → implicit/metrics + mesh/from-volume); workflow 2
  "bracket load case" (failure: mesh/preprocess succeeds, sim/custom fails with
  a solver error, sim/postprocess/stress is canceled); a stand-alone legacy job
  (``mesh/export``, no workflow).
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from . import meshes
from .constants import OTHER_USER, SANDBOX_USER
from .resources import utc
from .store import ACCESS_VALUES, TYPE_VALUES, Store

__all__ = ["load", "write_bulk_file", "PLAYGROUND_NAME", "CUBE_PIPELINE", "BRACKET_LOAD_CASE"]

PLAYGROUND_NAME = "Sandbox playground"
_THUMBS = "https://example.com/metafold-sandbox/thumbnails/"

CUBE_PIPELINE = """\
# cube pipeline: mesh -> volume -> metrics and a new mesh
jobs:
  preprocess:
    type: mesh/preprocess
    assets:
      mesh: cube.stl
  sample:
    type: implicit/from-mesh
    needs: [preprocess]
    assets:
      mesh: preprocess.mesh
    parameters:
      resolution: [16, 16, 16]
  metrics:
    type: implicit/metrics
    needs: [sample]
    assets:
      volume: sample.volume
  remesh:
    type: mesh/from-volume
    needs: [sample]
    assets:
      volume: sample.volume
"""

BRACKET_LOAD_CASE = """\
# bracket load case: the solver diverges on purpose
jobs:
  preprocess:
    type: mesh/preprocess
    assets:
      mesh: bracket.obj
  simulate:
    type: sim/custom
    needs: [preprocess]
    assets:
      mesh: preprocess.mesh
    parameters:
      load_N: 1000
      material: Ti-6Al-4V
  postprocess:
    type: sim/postprocess/stress
    needs: [simulate]
    assets:
      data: simulate
"""

SOLVER_ERROR = "Solver diverged at step 7: element 4182 inverted (check the load case and mesh quality)"

# name, user, access, type, created, modified, thumbnail, project data, graph
_PROJECTS: list[tuple[Any, ...]] = [
    (
        "Gyroid heat exchanger", SANDBOX_USER, "private", "unspecified",
        utc(2025, 1, 14, 9, 30, 12), utc(2025, 3, 2, 16, 4, 51), _THUMBS + "gyroid-heat-exchanger.png",
        {"units": "mm", "notes": "Counter-flow core, 2 mm wall"},
        {"nodes": [{"id": "gyroid", "type": "GyroidLattice", "cell_size": 8.0}], "edges": []},
    ),
    (
        "Lattice bracket study", SANDBOX_USER, "org", "digital_test_bench_experiment",
        utc(2025, 2, 3, 13, 17, 40), utc(2025, 2, 11, 8, 2, 5), None,
        {"experiment": {"variants": 4, "load_case": "cantilever"}}, None,
    ),
    (
        PLAYGROUND_NAME, SANDBOX_USER, "private", "unspecified",
        utc(2025, 2, 20, 10, 0, 0), utc(2025, 6, 12, 15, 42, 3), _THUMBS + "sandbox-playground.png",
        {"description": "Demo assets, jobs and workflows of the Metafold sandbox"}, None,
    ),
    (
        "TPMS gallery", SANDBOX_USER, "public", "unspecified",
        utc(2025, 3, 11, 17, 55, 21), utc(2025, 3, 11, 17, 55, 21), _THUMBS + "tpms-gallery.png",
        None, {"nodes": [{"id": "schwarz", "type": "SchwarzP"}], "edges": []},
    ),
    (
        "Colleague's private project", OTHER_USER, "private", "unspecified",
        utc(2025, 3, 27, 11, 8, 0), utc(2025, 3, 27, 11, 8, 0), None, None, None,
    ),
    (
        "Bike saddle cushion", SANDBOX_USER, "private", "digital_test_bench_experiment",
        utc(2025, 4, 22, 7, 45, 9), utc(2025, 5, 1, 12, 0, 0), None,
        {"experiment": {"variants": 3, "load_case": "seated rider, 80 kg"}}, None,
    ),
    (
        "Drone arm lightweighting", SANDBOX_USER, "org", "unspecified",
        utc(2025, 5, 5, 19, 3, 33), utc(2025, 5, 19, 9, 27, 14), _THUMBS + "drone-arm.png", None, None,
    ),
    (
        "Heat sink comparison", SANDBOX_USER, "private", "digital_test_bench_experiment",
        utc(2025, 5, 28, 14, 12, 0), utc(2025, 5, 28, 14, 12, 0), None, None, None,
    ),
    (
        "Orthotic insole", SANDBOX_USER, "public", "unspecified",
        utc(2025, 7, 9, 8, 20, 47), utc(2025, 7, 30, 10, 1, 2), _THUMBS + "orthotic-insole.png",
        {"units": "mm", "patient": "anonymised"}, None,
    ),
    (
        "Acoustic panel", SANDBOX_USER, "org", "digital_test_bench_experiment",
        utc(2025, 8, 18, 16, 34, 5), utc(2025, 8, 18, 16, 34, 5), None, None, None,
    ),
    (
        "Untitled project", SANDBOX_USER, "private", "unspecified",
        utc(2025, 9, 30, 23, 59, 1), utc(2025, 9, 30, 23, 59, 1), None, None, None,
    ),
]

_HISTORIC_EXPORTS = 12


def load(
    store: Store,
    *,
    demo: bool = True,
    bulk_projects: int = 0,
    bulk_asset: tuple[Path, int, str] | None = None,
) -> None:
    """Fill an empty store.

    Args:
        demo: load the demo projects, assets, jobs and workflows; without it only
            an empty "Sandbox playground" project exists.
        bulk_projects: extra generated projects.
        bulk_asset: ``(path, size, checksum)`` of a pre-written file to register
            as ``bulk.bin`` in the default project.
    """
    with store.lock:
        if demo:
            _load_demo(store)
        else:
            created = utc(2025, 2, 20, 10, 0, 0)
            store.default_project_id = store.add_project(
                SANDBOX_USER, PLAYGROUND_NAME, created=created
            ).id
        _load_bulk_projects(store, bulk_projects)
        if bulk_asset is not None:
            path, size, checksum = bulk_asset
            assert store.default_project_id is not None  # both branches above set it
            store.add_asset_file(
                store.default_project_id, "bulk.bin", path, size, checksum, created=utc(2025, 10, 1, 12, 0, 0)
            )


def _load_demo(store: Store) -> None:
    ids = []
    for name, user, access, ptype, created, modified, thumb, data, graph in _PROJECTS:
        record = store.add_project(
            user, name, access=access, type=ptype, created=created, modified=modified,
            thumbnail=thumb, project=data, graph=graph, count=user == SANDBOX_USER,
        )
        ids.append(record.id)
    gyroid, _, playground, gallery, colleague = ids[:5]
    store.default_project_id = playground

    def upload(project_id: int, filename: str, data: bytes, created: float) -> None:
        store.add_asset_bytes(project_id, filename, data, created=created)
        if project_id != colleague:
            store.usage["import"] += 1

    upload(gyroid, "heat-exchanger-core.stl",
           meshes.stl_binary("heat exchanger core", meshes.cube_triangles(20.0)), utc(2025, 1, 14, 9, 41, 0))
    upload(playground, "cube.stl", meshes.stl_ascii("cube", meshes.cube_triangles(10.0)), utc(2025, 2, 20, 10, 3, 17))
    upload(playground, "bracket.obj", meshes.bracket_obj(), utc(2025, 2, 20, 10, 4, 2))
    upload(playground, "icosahedron.stl",
           meshes.stl_binary("icosahedron r=5 mm", meshes.icosahedron_triangles()), utc(2025, 2, 21, 8, 15, 30))
    upload(gallery, "schwarz-p-cell.stl",
           meshes.stl_ascii("schwarz_p_cell", meshes.octahedron_triangles()), utc(2025, 3, 11, 18, 2, 44))
    upload(colleague, "secret-part.stl", meshes.stl_ascii("secret", meshes.cube_triangles(3.0)),
           utc(2025, 3, 27, 11, 9, 0))

    pid = str(playground)
    cube_t0 = utc(2025, 3, 4, 14, 5, 9)
    store.dispatch(
        SANDBOX_USER, pid, {"definition": CUBE_PIPELINE, "parameters": {"sandbox.duration": "96"}}, now=cube_t0
    )
    store.advance_all(now=cube_t0 + 3600)
    bracket_t0 = utc(2025, 4, 15, 9, 12, 44)
    store.dispatch(
        SANDBOX_USER, pid,
        {"definition": BRACKET_LOAD_CASE, "parameters": {"sandbox.duration": "240"}},
        now=bracket_t0, fail_errors={"simulate": SOLVER_ERROR},
    )
    store.advance_all(now=bracket_t0 + 3600)

    legacy_start = utc(2025, 6, 12, 15, 40, 0)
    store.add_job(
        playground, "export-obj", "mesh/export", legacy_start - 5,
        input_params={"format": "obj"},
        state="success", started=legacy_start, finished=legacy_start + 123,
        output_params={"format": "obj", "faces": "20"}, output_assets={},
        meta={"worker": "legacy-v1"},
    )
    store.usage["export"] += 1 + _HISTORIC_EXPORTS  # the legacy export job, and older ones long deleted

    # the other mesh formats, added last so that every earlier ID stays what it was
    upload(playground, "torus.ply", meshes.ply_binary(meshes.torus_mesh(), "torus R=12 mm r=4 mm"),
           utc(2025, 6, 20, 9, 0, 0))
    upload(playground, "gear.glb", meshes.glb(meshes.gear_mesh(), "spur gear"), utc(2025, 6, 20, 9, 5, 0))


def _load_bulk_projects(store: Store, count: int) -> None:
    if count <= 0:
        return
    base = utc(2024, 1, 1, 8, 0, 0)
    span = 600 * 86400  # spread over ~20 months
    step = span / count
    store.limits["project"] += count
    for i in range(count):
        created = base + int(i * step)
        store.add_project(
            SANDBOX_USER,
            f"Bulk project {i + 1:05d}",
            access=ACCESS_VALUES[i % len(ACCESS_VALUES)],
            type=TYPE_VALUES[(i // 3) % len(TYPE_VALUES)],
            created=created,
            modified=created + (i % 7) * 3600,
        )


def write_bulk_file(path: Path, mib: int) -> tuple[int, str]:
    """Write ``mib`` MiB of deterministic bytes to ``path`` without holding them in memory.

    Returns:
        ``(size, "sha256:<hex>")``.
    """
    block = bytearray(random.Random(20250304).randbytes(1 << 20))
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        for i in range(mib):
            # Make every MiB different so a misplaced block changes the checksum.
            block[:8] = i.to_bytes(8, "little")
            digest.update(block)
            fh.write(block)
    return mib << 20, "sha256:" + digest.hexdigest()
