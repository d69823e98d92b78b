"""Geometry: cached mesh loading, the 3D view and mesh metrics, against the sandbox's seeded meshes."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from IPython.core.error import UsageError
from PIL import Image

import metafold_jupyter as mf
from metafold_jupyter import geometry, operations
from metafold_jupyter.errors import MetafoldError, TransportError
from metafold_jupyter.sandbox import meshes

PLOTLY = "application/vnd.plotly.v1+json"

#: filename -> (format check on the raw bytes, faces, bounds)
SEEDED = {
    "cube.stl": (lambda b: b.startswith(b"solid cube"), 12, [[0, 0, 0], [10, 10, 10]]),
    "icosahedron.stl": (lambda b: not b.startswith(b"solid") and len(b) == 84 + 50 * 20, 20, None),
    "bracket.obj": (lambda b: b.startswith(b"# L-bracket"), 20, [[0, 0, 0], [40, 30, 20]]),
    "torus.ply": (lambda b: b.startswith(b"ply\nformat binary_little_endian 1.0\n"), 1024,
                  [[-16, -16, -4], [16, 16, 4]]),
    "gear.glb": (lambda b: b[:4] == b"glTF", 192, None),
}


def asset_id(name: str) -> str:
    frame = mf.assets(q=f'filename:"{name}"')
    assert len(frame) == 1, name
    return str(frame["id"].iloc[0])


def downloads(sandbox) -> list:
    return [r for r in sandbox.requests if r.origin == "download"]


def cache_files() -> list[str]:
    directory = geometry.mesh_cache_dir()
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def checksums(sandbox) -> dict[str, str]:
    return {a.filename: a.checksum for a in sandbox.store.assets.values()
            if str(a.project_id) == sandbox.default_project_id}


def png_of(view) -> Image.Image:
    bundle = view._repr_mimebundle_()
    return Image.open(io.BytesIO(base64.b64decode(bundle["image/png"]))).convert("RGB")


def typed(spec: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(spec["bdata"]), dtype={"f4": "<f4", "u2": "<u2", "u4": "<u4"}[spec["dtype"]])


# -- load_mesh ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_load_mesh_reads_every_seeded_format(session, sandbox, name):
    is_format, faces, bounds = SEEDED[name]
    aid = asset_id(name)
    raw = mf.download_asset(aid, progress=False).read_bytes()
    assert is_format(raw), f"the seeded {name} is not in the format it claims"

    mesh = mf.load_mesh(aid, progress=False)

    assert len(mesh.faces) == faces
    assert mesh.is_watertight and mesh.volume > 0  # closed and wound outwards
    if bounds is not None:
        assert np.allclose(mesh.bounds, bounds, atol=1e-5)
    assert mesh.metadata["metafold"]["asset_id"] == aid
    if name == "gear.glb":
        assert mesh.units == "mm"  # from the glTF mesh extras


def test_load_mesh_second_call_makes_only_the_metadata_call(session, sandbox):
    aid = asset_id("torus.ply")
    first = mf.load_mesh(aid, progress=False)
    assert len(downloads(sandbox)) == 1
    before = len(sandbox.requests)

    second = mf.load_mesh(aid, progress=False)

    new = sandbox.requests[before:]
    assert [(r.origin, r.method, r.path, r.query) for r in new] == [
        ("api", "GET", f"/projects/{session.project_id}/assets/{aid}", "")
    ]
    assert np.array_equal(first.vertices, second.vertices) and np.array_equal(first.faces, second.faces)
    assert second is not first


def test_load_mesh_cache_is_keyed_by_checksum_and_holds_only_whole_files(session, sandbox):
    aid = asset_id("gear.glb")
    checksum = mf.assets(q="filename:gear.glb")["checksum"].iloc[0]
    mf.load_mesh(aid, progress=False)

    key = checksum.removeprefix("sha256:")
    assert cache_files() == [f"{key}.glb", f"{key}.glb.v1.npz"]
    raw = geometry.mesh_cache_dir() / f"{key}.glb"
    assert "sha256:" + hashlib.sha256(raw.read_bytes()).hexdigest() == checksum
    assert mf.load_mesh(aid, progress=False).units == "mm"  # the parsed copy keeps the units


def test_load_mesh_fetches_again_when_the_checksum_changes(session, sandbox):
    aid = asset_id("cube.stl")
    assert np.allclose(mf.load_mesh(aid, progress=False).bounds, [[0, 0, 0], [10, 10, 10]])
    # the asset's content changes on the server (as a re-upload would), same ID
    bigger = meshes.stl_ascii("cube", meshes.cube_triangles(20.0))
    record = sandbox.store.assets[int(aid)]
    record.path.write_bytes(bigger)
    record.size, record.checksum = len(bigger), "sha256:" + hashlib.sha256(bigger).hexdigest()
    record._json = None

    mesh = mf.load_mesh(aid, progress=False)

    assert len(downloads(sandbox)) == 2
    assert np.allclose(mesh.bounds, [[0, 0, 0], [20, 20, 20]])
    mf.load_mesh(aid, progress=False)
    assert len(downloads(sandbox)) == 2


def test_load_mesh_interrupted_download_leaves_nothing_in_the_cache(session, sandbox):
    aid = asset_id("torus.ply")
    sandbox.inject("/blobs/*", truncate=1000, origin="download")

    with pytest.raises(TransportError, match="interrupted"):
        mf.load_mesh(aid, progress=False)

    assert cache_files() == []  # no partial file, no temporary directory
    assert len(mf.load_mesh(aid, progress=False).faces) == 1024  # and the next call works


def test_load_mesh_removes_what_a_crashed_kernel_left_and_spares_running_downloads(session, sandbox):
    import os
    import time

    directory = geometry.mesh_cache_dir()
    directory.mkdir(parents=True)
    stale, running = directory / ".download-crashed", directory / ".download-running"
    for folder in (stale, running):
        folder.mkdir()
        (folder / "torus.ply.part").write_bytes(b"partial")
    day_ago = time.time() - 25 * 3600
    os.utime(stale, (day_ago, day_ago))

    mf.load_mesh(asset_id("torus.ply"), progress=False)

    assert not stale.exists() and running.exists()


def test_load_mesh_refuses_a_non_mesh_asset_before_downloading(session, sandbox):
    aid = asset_id("sample-2.bin")
    with pytest.raises(MetafoldError, match=r"sample-2\.bin.*is not a mesh file") as caught:
        mf.load_mesh(aid)
    assert "STL, OBJ, PLY, GLB" in caught.value.hint
    assert downloads(sandbox) == []


def test_load_mesh_unreadable_mesh_is_one_clear_error(session, sandbox, tmp_path):
    broken = tmp_path / "broken.ply"
    broken.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 9\nend_header\n\x01\x02")
    aid = str(mf.upload_asset(broken, progress=False)["id"].iloc[0])

    with pytest.raises(MetafoldError) as caught:
        mf.load_mesh(aid, progress=False)

    assert "broken.ply" in str(caught.value) and "\n" not in str(caught.value)


# -- show ---------------------------------------------------------------------------------------


def test_show_mime_bundle_holds_the_interactive_figure_and_a_png(session):
    from IPython.core.formatters import DisplayFormatter

    from metafold_jupyter.meshview import _camera

    view = mf.show(asset_id("cube.stl"))
    data, _ = DisplayFormatter().format(view)  # what a kernel sends to the frontend

    assert {PLOTLY, "image/png", "text/plain"} <= set(data)
    figure = data[PLOTLY]
    json.dumps(figure)  # JSON as it is, as a notebook stores it
    (trace,) = figure["data"]
    assert trace["type"] == "mesh3d"
    points = np.stack([typed(trace[k]) for k in "xyz"], axis=1)
    triangles = np.stack([typed(trace[k]) for k in "ijk"], axis=1)
    assert points.shape == (8, 3) and triangles.shape == (12, 3)
    assert np.allclose(points.min(axis=0), 0) and np.allclose(points.max(axis=0), 10)
    scene = figure["layout"]["scene"]
    assert scene["aspectmode"] == "data"  # equal scale on every axis
    eye = np.array([scene["camera"]["eye"][k] for k in "xyz"])
    assert np.allclose(eye / np.linalg.norm(eye), _camera()[2])  # the PNG's direction of view
    assert "cube.stl" in figure["layout"]["title"]["text"] and "12 faces" in figure["layout"]["title"]["text"]
    assert data["image/png"] == base64.b64encode(view.png).decode()
    assert view.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "cube.stl" in data["text/plain"] and "12 faces" in data["text/plain"]


def silhouette(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns in the mesh's colour, at any shade (not the title, the axis marks, the margin)."""
    body = image[60:].astype(float)  # below the title
    body[-100:, :100] = 255  # and not the axis marks in the corner
    red, blue = body[..., 0], body[..., 2]
    ys, xs = np.nonzero((blue > 40) & (red / np.maximum(blue, 1) > 0.28) & (red / np.maximum(blue, 1) < 0.40))
    return ys, xs


def test_show_png_is_a_picture_of_the_mesh(session):
    import trimesh

    from metafold_jupyter.meshview import _camera

    cube = np.asarray(png_of(mf.show(asset_id("cube.stl")))).astype(int)
    bar = trimesh.creation.box((40.0, 4.0, 4.0))
    bar_image = np.asarray(png_of(mf.show(bar))).astype(int)

    assert cube.shape == (480, 640, 3)
    middle = cube[200:300, 270:370]
    assert (np.abs(middle - 255).sum(axis=2) > 60).mean() > 0.9, "the middle of the picture is blank"
    assert (middle[..., 2] > middle[..., 0] + 40).mean() > 0.9  # the mesh's blue
    assert len({tuple(p) for p in cube[60:].reshape(-1, 3) if p[2] > p[0] + 40}) >= 3  # three lit faces
    assert (cube[470:, :] > 245).all() and (cube[:, -5:] > 245).all()  # a margin around it
    # the drawn silhouette has the proportions of the mesh seen from the camera
    for image, mesh in ((cube, trimesh.creation.box((10.0, 10.0, 10.0))), (bar_image, bar)):
        seen = mesh.vertices @ _camera()[:2].T
        expected = np.ptp(seen[:, 0]) / np.ptp(seen[:, 1])
        ys, xs = silhouette(image)
        assert (np.ptp(xs) + 1) / (np.ptp(ys) + 1) == pytest.approx(expected, rel=0.05)


def test_show_png_draws_open_surfaces_from_behind_and_hides_back_faces_of_closed_ones(session):
    import trimesh

    # a square sheet facing down (-z): the camera looks from above, at its back
    sheet = trimesh.Trimesh([[0, 0, 0], [10, 0, 0], [0, 10, 0], [10, 10, 0]], [[0, 2, 1], [1, 2, 3]], process=False)
    image = np.asarray(png_of(mf.show(sheet))).astype(int)
    _, xs = silhouette(image)
    assert len(xs) > 20_000, "an open surface seen from behind must still be drawn"
    # a closed box: its back faces are skipped, so none shows through its 12 large faces (depth
    # sorting alone gets large faces wrong); it must look like the same box wound inwards (so
    # nothing is skipped) and cut into 3,072 small faces (where depth sorting alone is right)
    box = trimesh.creation.box((10.0, 20.0, 5.0))
    fine = box.subdivide().subdivide().subdivide().subdivide()
    inside_out = trimesh.Trimesh(fine.vertices, fine.faces[:, ::-1], process=False)
    big_inside_out = trimesh.Trimesh(box.vertices, box.faces[:, ::-1], process=False)
    outward, reference, unculled = (np.asarray(png_of(mf.show(m))).astype(int)
                                    for m in (box, inside_out, big_inside_out))
    assert len(silhouette(reference)[0]) > 50_000

    def differ(a, b):
        return (np.abs(a - b).sum(axis=2) > 90).mean()

    assert differ(outward, reference) < 0.015  # the same picture, up to the edges' pixels
    assert differ(unculled, reference) > 2 * differ(outward, reference)  # what skipping back faces fixes


def test_show_units_in_the_title_when_known(session):
    view = mf.show(asset_id("gear.glb"))
    assert view.units == "mm"
    title = view.to_dict()["layout"]["title"]["text"]
    assert "192 faces" in title and "mm" in title
    assert view.to_dict()["layout"]["scene"]["xaxis"]["title"]["text"] == "x (mm)"


def test_show_reduces_meshes_above_max_faces_and_says_so(session):
    view = mf.show(asset_id("torus.ply"), max_faces=300)

    assert view.reduced and view.original_faces == 1024 and 100 <= view.faces <= 300
    (trace,) = view.to_dict()["data"]
    assert len(typed(trace["i"])) == view.faces
    title = view.to_dict()["layout"]["title"]["text"]
    assert f"{view.faces:,} of 1,024 faces (reduced for display)" in title
    assert "reduced" in repr(view) or "of 1,024 faces" in repr(view)
    full = mf.show(asset_id("torus.ply"))
    assert not full.reduced and full.faces == 1024


def test_show_local_file_and_mesh_object(session, tmp_path):
    import trimesh

    path = tmp_path / "tetra.stl"
    path.write_bytes(meshes.stl_binary("tetra", meshes.octahedron_triangles()[:4]))
    assert mf.show(path).faces == 4
    assert mf.show(str(path)).name == "tetra.stl"
    box = trimesh.creation.box((1.0, 2.0, 3.0))
    box.units = "m"
    view = mf.show(box)
    assert view.faces == 12 and view.units == "m"
    assert np.allclose(view.extents, (1, 2, 3))
    assert view.figure.data[0].type == "mesh3d"  # a plotly Figure to customise


@pytest.mark.parametrize(("obj", "kw", "message"), [
    ("cube.stl", {"max_faces": 0}, "max_faces must be a whole number"),
    ("missing/part.stl", {}, "no mesh file at"),
    (3.5, {}, "cannot show a float"),
])
def test_show_bad_input_is_one_line(session, obj, kw, message):
    with pytest.raises(MetafoldError, match=message) as caught:
        mf.show(obj, **kw)
    assert "\n" not in str(caught.value)


# -- mesh_metrics ------------------------------------------------------------------------------


def test_mesh_metrics_typed_frame_for_every_mesh_asset(session, sandbox):
    frame = mf.mesh_metrics(progress=False)

    assert [(c, str(t)) for c, t in frame.dtypes.items()] == geometry.METRIC_COLUMNS
    listed = mf.assets()
    meshes_listed = listed[listed["filename"].str.lower().str.endswith((".stl", ".obj", ".ply", ".glb"))]
    assert list(frame["asset_id"]) == list(meshes_listed["id"])  # the project's order, no .bin
    cube = frame.set_index("filename").loc["cube.stl"]
    assert cube["faces"] == 12 and cube["vertices"] == 8 and cube["watertight"]
    assert cube["volume"] == pytest.approx(1000) and cube["area"] == pytest.approx(600)
    assert [cube[c] for c in ("min_x", "min_y", "min_z", "max_x", "max_y", "max_z")] == [0, 0, 0, 10, 10, 10]
    torus = frame.set_index("filename").loc["torus.ply"]
    assert torus["volume"] == pytest.approx(2 * np.pi**2 * 12 * 4**2, rel=0.05)  # a 32 x 16 polygon torus


def test_mesh_metrics_explicit_assets_in_order_and_open_meshes(session, sandbox, tmp_path):
    sheet = tmp_path / "sheet.stl"
    sheet.write_bytes(meshes.stl_ascii("sheet", meshes.cube_triangles(5.0)[:2]))  # one open square
    sheet_id = str(mf.upload_asset(sheet, progress=False)["id"].iloc[0])
    ids = [asset_id("gear.glb"), sheet_id, asset_id("cube.stl"), sheet_id]

    frame = mf.mesh_metrics(ids, progress=False)

    assert list(frame["asset_id"]) == ids[:3]  # each once, in the order given
    open_row = frame.set_index("asset_id").loc[sheet_id]
    assert not open_row["watertight"] and np.isnan(open_row["volume"]) and open_row["area"] == pytest.approx(25)
    by_frame = mf.mesh_metrics(mf.assets(q="filename:cube.stl"), progress=False)
    assert list(by_frame["filename"]) == ["cube.stl"]
    empty = mf.mesh_metrics([], progress=False)
    assert empty.empty and [(c, str(t)) for c, t in empty.dtypes.items()] == geometry.METRIC_COLUMNS


def test_mesh_metrics_downloads_concurrently_bounded_by_the_session(session, sandbox, monkeypatch):
    session.concurrency = 2
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}
    real = operations.download_checked

    def counting(*args, **kw):  # the real download, counted
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            return real(*args, **kw)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(operations, "download_checked", counting)
    sandbox.inject("/blobs/*", delay=0.4, count=20, origin="download")  # each download takes a while

    frame = mf.mesh_metrics(progress=False)

    assert len(frame) == 8
    assert len(downloads(sandbox)) == len(set(frame["filename"].map(checksums(sandbox))))  # same bytes once
    assert state["peak"] == 2


def test_mesh_metrics_not_a_mesh_is_one_clear_error(session):
    with pytest.raises(MetafoldError, match="is not a mesh file"):
        mf.mesh_metrics([asset_id("cube.stl"), asset_id("sample-2.bin")], progress=False)


# -- without the extra ----------------------------------------------------------------------------

_WITHOUT = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None  # as if not installed
import metafold_jupyter as mf
for call in (lambda: mf.load_mesh("2", project="3"), lambda: mf.show("2"), lambda: mf.mesh_metrics(project="3")):
    try:
        call()
    except mf.ConfigError as exc:
        print(type(exc).__name__, "|", exc, "|", exc.hint)
    except mf.NotLoggedInError:  # the extra was there: the call went on to need a session
        print("needs a session")
"""


@pytest.mark.parametrize("blocked", [["trimesh"], ["plotly"], ["matplotlib"]])
def test_missing_extra_is_a_config_error_naming_it(blocked):
    done = subprocess.run([sys.executable, "-c", _WITHOUT.format(blocked=blocked)], capture_output=True, text=True,
                          timeout=120, check=True)
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout + done.stderr
    if blocked != ["trimesh"]:  # load_mesh and metrics need only trimesh; show needs the rest too
        assert lines[0] == lines[2] == "needs a session"
        lines = lines[1:2]
    for line in lines:
        kind, message, hint = line.split(" | ")
        assert kind == "ConfigError"
        assert "metafold-jupyter[3d]" in message and f"{blocked[0]} is not installed" in message
        assert hint == 'pip install "metafold-jupyter[3d]"'


def test_missing_extra_in_the_magic_is_one_line(logged_in, monkeypatch):
    monkeypatch.setitem(sys.modules, "trimesh", None)
    with pytest.raises(UsageError, match=r"metafold-jupyter\[3d\].*pip install"):
        logged_in.run_line_magic("metafold", "show 2")


def test_import_stays_cheap():
    heavy = "{'numpy', 'trimesh', 'plotly', 'matplotlib', 'fast_simplification', 'pandas', 'requests', 'IPython', " \
            "'ipywidgets', 'werkzeug'}"
    loaded = f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {heavy}))"
    bare = f"import sys, metafold_jupyter as mf; {loaded}"
    done = subprocess.run([sys.executable, "-c", bare], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]"
    # the geometry calls resolve like the other operations, and load their extra only when called
    geometry_code = f"import sys, metafold_jupyter as mf; mf.show, mf.load_mesh, mf.mesh_metrics; {loaded}"
    done = subprocess.run([sys.executable, "-c", geometry_code], capture_output=True, text=True, timeout=60,
                          check=True)
    assert not {"trimesh", "plotly", "matplotlib", "fast_simplification"} & set(eval(done.stdout))  # noqa: S307


# -- magics -------------------------------------------------------------------------------------------


@pytest.fixture
def logged_in(tmp_path, sandbox):
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = str(tmp_path / "history.sqlite")
    InteractiveShell.clear_instance()
    ip = InteractiveShell.instance(config=config)
    ip.extension_manager.load_extension("metafold_jupyter")
    from helpers import login_to

    login_to(sandbox, project=sandbox.default_project_id)
    yield ip
    ip.extension_manager.unload_extension("metafold_jupyter")
    ip.history_manager.end_session()
    InteractiveShell.clear_instance()


def test_magic_show_returns_the_view(logged_in):
    aid = asset_id("gear.glb")
    view = logged_in.run_line_magic("metafold", f"show {aid}")
    assert view.faces == 192 and view.name == f"gear.glb (asset {aid})"
    small = logged_in.run_line_magic("metafold", f"show {asset_id('torus.ply')} --max-faces 200 -o v")
    assert small.reduced and logged_in.user_ns["v"] is small


def test_magic_metrics_all_or_some(logged_in):
    every = logged_in.run_line_magic("metafold", "metrics")
    some = logged_in.run_line_magic("metafold", f"metrics {asset_id('cube.stl')} {asset_id('torus.ply')}")
    assert len(every) == 8 and list(some["filename"]) == ["cube.stl", "torus.ply"]


def test_magic_show_errors_are_one_line(logged_in):
    with pytest.raises(UsageError, match="usage: %metafold show ASSET_ID"):
        logged_in.run_line_magic("metafold", "show")
    with pytest.raises(UsageError, match="is not a mesh file"):
        logged_in.run_line_magic("metafold", f"show {asset_id('sample-2.bin')}")
    with pytest.raises(UsageError, match="HTTP 404"):
        logged_in.run_line_magic("metafold", "show 999")
    with pytest.raises(UsageError, match="--max-faces applies to show only"):
        logged_in.run_line_magic("metafold", "assets --max-faces 10")


def test_magic_completion_offers_mesh_assets(logged_in):
    from IPython.core.completer import provisionalcompleter

    def complete(line):
        with provisionalcompleter():
            return {c.text for c in logged_in.Completer.completions(line, len(line))}

    listed = mf.assets()
    mesh_ids = set(listed.loc[~listed["filename"].str.endswith(".bin"), "id"])
    assert complete("%metafold show ") == mesh_ids
    assert complete(f"%metafold metrics {min(mesh_ids)} ") == mesh_ids
    assert "--max-faces" in complete("%metafold show --max")
