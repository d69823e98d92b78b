"""Geometry: mesh assets through a checksum-keyed cache, 3D views and mesh metrics.

Feature layer, beside ``frames`` and ``operations`` (whose checked download it uses);
never imports the magics. Needs the optional extra ``metafold-jupyter[3d]`` (trimesh,
plotly, fast-simplification, matplotlib); this module imports none of them until a
call needs them, and raises :class:`ConfigError` naming the extra when one is missing.

The cache lives in ``<user cache dir>/meshes``, one file per content:

- ``<sha256>.<ext>``: the asset's bytes, moved in only after the download's size and
  checksum were verified (a download runs in a private temporary directory next to
  it, so the cache never holds a partial file);
- ``<sha256>.<ext>.v1.npz``: the parsed mesh (vertices, faces, colours, units), so a
  second load skips parsing (parsing a 50 MiB STL takes seconds; this takes tens of
  milliseconds).

An asset is looked up by its checksum, so a second load of the same asset costs one
metadata call and no download; a changed checksum is a new key, fetched again.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import operations
from .errors import ConfigError, IntegrityError, MetafoldError
from .fanout import gather, workers_for
from .kernel_session import Session, session
from .paths import api_path

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import trimesh

    from .meshview import MeshView

_LOGGER = logging.getLogger(__name__)

EXTRA = "metafold-jupyter[3d]"
#: Mesh file types by filename suffix (what trimesh reads, as the contract lists them).
MESH_TYPES = {".stl": "stl", ".obj": "obj", ".ply": "ply", ".glb": "glb"}
DEFAULT_MAX_FACES = 200_000
_SIDECAR = ".v1.npz"  # bump when the parsed-mesh file changes
_STALE_DOWNLOAD = 24 * 3600  # seconds after which a crashed kernel's temporary download is removed

METRIC_COLUMNS = [
    ("asset_id", "string"), ("filename", "string"), ("faces", "int64"), ("vertices", "int64"),
    ("watertight", "bool"), ("volume", "float64"), ("area", "float64"),
    ("min_x", "float64"), ("min_y", "float64"), ("min_z", "float64"),
    ("max_x", "float64"), ("max_y", "float64"), ("max_z", "float64"),
]


# -- the optional extra ---------------------------------------------------------------------------


def require(*modules: str) -> None:
    """Import ``modules`` or raise the one-line error that names the extra.

    Raises:
        ConfigError: a module of the ``[3d]`` extra is missing.
    """
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(
                f"3D views and mesh metrics need the optional extra {EXTRA} ({name} is not installed)",
                hint=f'pip install "{EXTRA}"',
            ) from None


# -- the cache ----------------------------------------------------------------------------------------


def mesh_cache_dir() -> Path:
    """Where downloaded meshes are kept (``<user cache dir>/meshes``; ``XDG_CACHE_HOME`` is honoured)."""
    from .token_cache import cache_dir

    return cache_dir() / "meshes"


def clear_mesh_cache() -> int:
    """Remove every cached mesh; returns how many files were removed."""
    directory = mesh_cache_dir()
    removed = 0
    for entry in directory.glob("*") if directory.is_dir() else []:
        if entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
            removed += 1
    return removed


def _cache_key(meta: Mapping[str, Any]) -> str | None:
    """The hex sha256 of the asset's bytes, or None when the API gave no usable checksum."""
    algorithm, _, digest = str(meta.get("checksum") or "").lower().partition(":")
    if algorithm != "sha256" or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        return None
    return digest


def _content_key(meta: Mapping[str, Any]) -> str:
    return _cache_key(meta) or f"asset {meta['id']}"


def _mesh_type(filename: str, asset_id: str) -> str:
    kind = MESH_TYPES.get(Path(filename).suffix.lower())
    if kind is None:
        raise MetafoldError(
            f"asset {asset_id} ({filename!r}) is not a mesh file",
            hint="3D views and metrics read " + ", ".join(t.upper() for t in MESH_TYPES.values()) + " files",
        )
    return kind


def _fetch(s: Session, pid: str, meta: Mapping[str, Any], directory: Path, progress: bool | None) -> Path:
    """Download an asset into ``directory`` under its checksum, never leaving a partial file.

    The download runs in a private temporary directory inside ``directory`` (the checked
    download renames its verified file into place there); the checksum it was verified
    against must be the one it is stored under, and only then does it move into the cache.
    """
    key = _cache_key(meta)
    suffix = Path(str(meta["filename"])).suffix.lower()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _sweep(directory)
    work = Path(tempfile.mkdtemp(dir=directory, prefix=".download-"))
    try:
        path, checked = operations.download_checked(s, pid, str(meta["id"]), work, progress=progress,
                                                    overwrite=False)
        if key is None:
            target = work.with_name(work.name + suffix)  # uncacheable: the caller removes it after loading
        else:
            actual = _cache_key(checked)  # the download verified its bytes against this checksum
            if actual != key:  # the asset changed between the metadata call and the download
                raise IntegrityError(
                    f"asset {meta['id']} changed while it was downloaded", expected=key, actual=actual
                )
            target = directory / f"{key}{suffix}"
        os.replace(path, target)
        return target
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sweep(directory: Path) -> None:
    """Remove temporary downloads and parsed copies a crashed kernel left behind (never read as entries)."""
    cutoff = time.time() - _STALE_DOWNLOAD
    for entry in directory.glob(".download-*"):
        try:
            stale = entry.stat().st_mtime < cutoff
        except OSError:
            continue
        if stale and entry.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
        elif stale:
            entry.unlink(missing_ok=True)


def _parse(path: Path, kind: str, label: str) -> trimesh.Trimesh:
    import trimesh

    try:
        loaded = trimesh.load(str(path), file_type=kind)
        if isinstance(loaded, trimesh.Scene):  # GLB, OBJ with several objects: one mesh
            loaded = loaded.to_mesh()
    except Exception as exc:  # noqa: BLE001 - a damaged file makes trimesh's parsers raise anything
        # (ValueError, IndexError, struct.error, even UnboundLocalError): one clear line instead
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise MetafoldError(
            f"{label} could not be read as a {kind.upper()} mesh ({detail})",
            hint="check that the file is a complete mesh (open it in a mesh viewer)",
        ) from exc
    if not isinstance(loaded, trimesh.Trimesh) or not len(loaded.faces):
        raise MetafoldError(f"{label} holds no triangles", hint="point clouds and empty files cannot be shown")
    return loaded


def _save_parsed(mesh: trimesh.Trimesh, sidecar: Path) -> None:
    """Keep the parsed arrays next to the file (atomically); textured meshes are re-parsed instead."""
    import numpy as np

    visual: Any = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        return
    arrays: dict[str, Any] = {"vertices": mesh.vertices, "faces": mesh.faces,
                              "info": np.array(json.dumps({"units": mesh.units}))}
    if kind == "vertex":
        arrays["vertex_colors"] = visual.vertex_colors
    elif kind == "face":
        arrays["face_colors"] = visual.face_colors
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=sidecar.parent, prefix=".download-", suffix=".npz")  # unique per writer
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, sidecar)
    except OSError as exc:  # a full or read-only cache costs speed, never the result
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _LOGGER.warning("could not keep the parsed mesh in %s: %s", sidecar.parent, exc.strerror)


def _load_parsed(sidecar: Path) -> trimesh.Trimesh | None:
    import numpy as np
    import trimesh

    try:
        with np.load(sidecar, allow_pickle=False) as data:
            colors = {key: data[key] for key in ("vertex_colors", "face_colors") if key in data}
            mesh = trimesh.Trimesh(data["vertices"], data["faces"], process=False, **colors)
            info = json.loads(str(data["info"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError) as exc:
        _LOGGER.info("ignoring a damaged parsed mesh %s: %s", sidecar, exc)
        sidecar.unlink(missing_ok=True)
        return None
    if info.get("units"):
        mesh.units = info["units"]
    return mesh


def _asset_mesh(s: Session, pid: str, meta: Mapping[str, Any], progress: bool | None) -> trimesh.Trimesh:
    """The mesh of an asset whose metadata we have: from the cache, else downloaded into it."""
    aid, filename = str(meta["id"]), str(meta.get("filename") or "")
    kind = _mesh_type(filename, aid)
    label = f"asset {aid} ({filename})"
    key = _cache_key(meta)
    directory = mesh_cache_dir()
    mesh = None
    if key is not None:
        raw = directory / f"{key}{Path(filename).suffix.lower()}"
        sidecar = raw.with_name(raw.name + _SIDECAR)
        size = meta.get("size")
        if raw.is_file() and (size is None or raw.stat().st_size == int(size)):
            mesh = _load_parsed(sidecar)
            if mesh is None:
                mesh = _parse(raw, kind, label)
                _save_parsed(mesh, sidecar)
            _LOGGER.info("asset %s from the mesh cache (%s)", aid, raw.name)
        else:
            sidecar.unlink(missing_ok=True)  # it belongs to a file that is gone or damaged
            raw = _fetch(s, pid, meta, directory, progress)
            mesh = _parse(raw, kind, label)
            _save_parsed(mesh, sidecar)
    else:  # no checksum to trust: fetch, read, forget
        _LOGGER.info("asset %s has no sha256 checksum; it is not cached", aid)
        raw = _fetch(s, pid, meta, directory, progress)
        try:
            mesh = _parse(raw, kind, label)
        finally:
            raw.unlink(missing_ok=True)
    mesh.metadata["metafold"] = {"asset_id": aid, "filename": filename, "project_id": pid,
                                 "checksum": meta.get("checksum")}
    return mesh


def _asset_meta(s: Session, pid: str, asset_id: Any) -> dict[str, Any]:
    return s.get_object(api_path("/projects/{pid}/assets/{aid}", pid=pid, aid=asset_id))


# -- the public calls ---------------------------------------------------------------------------------


def load_mesh(asset_id: str | int, project: str | None = None, *, progress: bool | None = None) -> trimesh.Trimesh:
    """A mesh asset (STL, OBJ, PLY, GLB) as a ``trimesh.Trimesh``, downloaded once per content.

    The first call downloads through the checked download into the user cache; later
    calls for the same asset make one metadata call and no download, until the asset's
    checksum changes. A GLB with several parts comes back as one mesh.

    Args:
        progress: ``False`` hides the download's progress bar.

    Raises:
        ConfigError: the ``[3d]`` extra is not installed.
        MetafoldError: the asset is not a mesh file, or cannot be read as one.
        APIError: the API answered with an error (a 404 for an unknown asset).
        IntegrityError: the download does not match its size or checksum.
    """
    require("trimesh")
    s = session()
    pid = s.require_project(project)
    return _asset_mesh(s, pid, _asset_meta(s, pid, asset_id), progress)


def show(obj: Any, project: str | None = None, *, max_faces: int = DEFAULT_MAX_FACES) -> MeshView:
    """Show a mesh in 3D: an interactive view (rotate, zoom) and a PNG of the same view.

    Args:
        obj: an asset ID, a local mesh file (a ``Path``, or a string ending in
            .stl/.obj/.ply/.glb or holding a path separator), or a ``trimesh.Trimesh``
            (or ``Scene``).
        max_faces: larger meshes are reduced to this many faces for the view (quadric
            decimation); the title says so. The interactive view stores about 24 bytes
            per face in a saved notebook (base64 float32 vertices and uint32 indices).

    Returns:
        A :class:`~metafold_jupyter.meshview.MeshView`; the last expression of a cell
        displays it.

    Raises:
        ConfigError: the ``[3d]`` extra is not installed.
        MetafoldError: a bad ``max_faces``, a missing file, or not a mesh.
    """
    if isinstance(max_faces, bool) or not isinstance(max_faces, int) or max_faces < 4:
        raise MetafoldError(f"max_faces must be a whole number of at least 4, not {max_faces!r}",
                            hint=f"e.g. max_faces={DEFAULT_MAX_FACES:_}")
    require("trimesh", "numpy", "matplotlib", "plotly", "fast_simplification")
    mesh, name = _resolve(obj, project)
    from .meshview import build_view, reduce_faces

    original = len(mesh.faces)
    if original > max_faces:
        mesh = reduce_faces(mesh, max_faces)
    return build_view(mesh, name, original_faces=original, units=_units(mesh))


def mesh_metrics(assets: Any = None, project: str | None = None, *, progress: bool | None = None) -> pd.DataFrame:
    """One row per mesh asset: counts, watertightness, volume, area and bounds, computed locally.

    Meshes come through the cache (:func:`load_mesh`); those not cached yet are downloaded
    concurrently, at most ``Session.concurrency`` at a time.

    Args:
        assets: asset IDs (one, a list, or a frame/Series with an ``id`` column);
            default: every mesh asset (STL, OBJ, PLY, GLB) of the project.
        progress: ``False`` hides the progress bar.

    Returns:
        Columns ``asset_id, filename`` (string), ``faces, vertices`` (int64),
        ``watertight`` (bool), ``volume, area, min_x, min_y, min_z, max_x, max_y, max_z``
        (float64), in the order of ``assets``. ``volume`` is NaN unless the mesh is
        watertight (an open surface encloses nothing).

    Raises:
        ConfigError: the ``[3d]`` extra is not installed.
        MetafoldError: an asset is not a mesh, or cannot be read (the first such error).
    """
    require("trimesh", "pandas")
    s = session()
    pid = s.require_project(project)
    if assets is None:
        listed = s.get_records(api_path("/projects/{pid}/assets", pid=pid), what="assets")
        metas = [a for a in listed if Path(str(a.get("filename", ""))).suffix.lower() in MESH_TYPES]
    else:
        ids = _asset_ids(assets)
        got = gather({aid: partial(_asset_meta, s, pid, aid) for aid in ids}, concurrency=workers_for(s),
                     progress=False, failures=())  # any failure stops the rest and is raised
        metas = [got.results[aid] for aid in ids]
    for meta in metas:  # refuse before downloading anything
        _mesh_type(str(meta.get("filename") or ""), str(meta["id"]))
    # the same content under several assets (a job's output copied as is) is loaded once
    contents = {_content_key(meta): meta for meta in metas}
    measured = gather(
        {key: partial(_asset_metrics, s, pid, meta) for key, meta in contents.items()},
        concurrency=workers_for(s), progress=progress, desc="mesh metrics", unit="mesh", failures=(),
    )
    computed = measured.results
    rows = [{"asset_id": str(meta["id"]), "filename": meta.get("filename"),
             **computed[_content_key(meta)]} for meta in metas]
    return _metrics_frame(rows)


def _asset_metrics(s: Session, pid: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    return _metrics(_asset_mesh(s, pid, meta, False))


# -- helpers ------------------------------------------------------------------------------------------


def _resolve(obj: Any, project: str | None) -> tuple[trimesh.Trimesh, str]:
    """The mesh to show and its title, from an asset ID, a local file or a mesh object."""
    import trimesh

    if isinstance(obj, trimesh.Trimesh):
        info = obj.metadata.get("metafold") or {}
        name = _asset_title(info) if info.get("asset_id") else str(obj.metadata.get("file_name") or "mesh")
        if not len(obj.faces):
            raise MetafoldError(f"{name} has no faces", hint="only triangle meshes can be shown")
        return obj, name
    if isinstance(obj, trimesh.Scene):
        return obj.to_mesh(), "scene"
    if isinstance(obj, os.PathLike) or (
        isinstance(obj, str) and (Path(obj).suffix.lower() in MESH_TYPES or os.sep in obj or "/" in obj)
    ):
        path = Path(obj).expanduser()
        if not path.is_file():
            raise MetafoldError(f"no mesh file at {str(path)!r}", hint="check the path, or pass an asset ID")
        kind = MESH_TYPES.get(path.suffix.lower())
        if kind is None:
            raise MetafoldError(f"{path.name!r} is not a mesh file",
                                hint="3D views read " + ", ".join(t.upper() for t in MESH_TYPES.values()) + " files")
        return _parse(path, kind, path.name), path.name
    if isinstance(obj, (str, int)) and not isinstance(obj, bool):
        mesh = load_mesh(obj, project)
        return mesh, _asset_title(mesh.metadata["metafold"])
    raise MetafoldError(f"cannot show a {type(obj).__name__}",
                        hint="pass an asset ID, a mesh file path or a trimesh.Trimesh")


def _asset_title(info: Mapping[str, Any]) -> str:
    return f"{info.get('filename') or 'mesh'} (asset {info['asset_id']})"


def _units(mesh: trimesh.Trimesh) -> str | None:
    units = getattr(mesh, "units", None)
    return str(units) if units else None


def _asset_ids(assets: Any) -> list[str]:
    if isinstance(assets, (str, int)) and not isinstance(assets, bool):
        values: Iterable[Any] = [assets]
    elif hasattr(assets, "columns"):  # a DataFrame, e.g. mf.assets(...)
        if "id" not in assets.columns:
            raise MetafoldError("the frame has no 'id' column", hint="pass mf.assets(...) or a list of asset IDs")
        values = assets["id"]
    else:
        values = assets
    ids = [str(v).strip() for v in values]
    return list(dict.fromkeys(ids))  # each asset once, in the order given


def _metrics(mesh: trimesh.Trimesh) -> dict[str, Any]:
    (min_x, min_y, min_z), (max_x, max_y, max_z) = mesh.bounds.tolist()
    watertight = bool(mesh.is_watertight)
    return {
        "faces": len(mesh.faces),
        "vertices": len(mesh.vertices),
        "watertight": watertight,
        "volume": abs(float(mesh.volume)) if watertight else float("nan"),
        "area": float(mesh.area),
        "min_x": min_x, "min_y": min_y, "min_z": min_z, "max_x": max_x, "max_y": max_y, "max_z": max_z,
    }


def _metrics_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    columns = [name for name, _ in METRIC_COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.astype(dict(METRIC_COLUMNS))
