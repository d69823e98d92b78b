"""What each job type of the sandbox reads, makes and counts, and how it computes its outputs.

A :class:`JobKind` names a type's input assets, its output assets (the first is what
a bare job name means in another job's ``assets:``) and the usage counter it
spends (``export`` for jobs that export a mesh, ``simulation`` for ``sim/*`` jobs,
as the Node SDK documents the quota keys). :func:`run_job` computes a finished
job's outputs from its parameters and input files; the geometry is real (see
``implicit`` and ``meshio``), so results follow the parameters. Bad parameters
or unusable inputs raise :class:`JobFailure`, which fails the job with that
message, as a real job would fail.

Results are memoised by content (type, parameters, input checksums) in a
:class:`ResultCache`, so re-seeding the sandbox or re-running a study point is free.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "JobKind",
    "JobInput",
    "JobFailure",
    "ResultCache",
    "kind_of",
    "run_job",
    "DEFAULT_LATTICE",
]

Outputs = tuple[dict[str, str], dict[str, tuple[str, bytes]]]

#: Parameters of the default lattice (``implicit/evaluate`` without parameters).
DEFAULT_LATTICE: dict[str, Any] = {"shape": "gyroid", "size": 20.0, "cell_size": 10.0, "thickness": 1.0, "resolution": 32}
_DEFAULT_MESH_RESOLUTION = 32
_BUILT_IN_CUBE = "built-in 10 mm cube (no 'mesh' input)"


class JobFailure(Exception):
    """The job cannot compute its outputs; ``str()`` becomes the job's ``error``."""


@dataclass(frozen=True)
class JobInput:
    """One resolved input asset of a job."""

    filename: str
    checksum: str
    path: Path

    def read(self) -> bytes:
        """The asset's bytes."""
        return self.path.read_bytes()


@dataclass(frozen=True)
class JobKind:
    """A job type's interface."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    counts: str | None
    run: Callable[[Mapping[str, str], Mapping[str, JobInput], str, ResultCache], Outputs]


class ResultCache:
    """A small thread-safe LRU of computed results, bounded by entries and bytes."""

    def __init__(self, max_entries: int = 64, max_bytes: int = 64 << 20) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self.max_entries = max_entries
        self.max_bytes = max_bytes

    def get_or_compute(self, key: Any, compute: Callable[[], Any], size: Callable[[Any], int]) -> Any:
        """The cached value for ``key``, computing and storing it on a miss."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key][0]
        value = compute()
        nbytes = size(value)
        with self._lock:
            if key not in self._items and nbytes <= self.max_bytes:
                self._items[key] = (value, nbytes)
                self._bytes += nbytes
                while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                    _, (_, dropped) = self._items.popitem(last=False)
                    self._bytes -= dropped
        return value


# -- parameters ----------------------------------------------------------------------------


def _json_value(params: Mapping[str, str], name: str) -> Any:
    text = params[name]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _number(params: Mapping[str, str], name: str, default: float, *, lo: float, hi: float, unit: str = "") -> float:
    if name not in params:
        return default
    value = _json_value(params, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo < value <= hi:
        raise JobFailure(f"parameter '{name}' must be a number in ({lo:g}, {hi:g}]{unit}, not {params[name]!r}")
    return float(value)


def _triple(params: Mapping[str, str], name: str, default: Any, *, lo: float, hi: float, integer: bool = False) -> Any:
    """A number or ``[x, y, z]``; returns a 3-tuple (or ``default`` when absent)."""
    if name not in params:
        return default
    value = _json_value(params, name)
    items = value if isinstance(value, list) else [value] * 3
    kind = "whole numbers" if integer else "numbers"
    ok = len(items) == 3 and all(
        not isinstance(v, bool) and isinstance(v, (int, float)) and lo <= v <= hi and (not integer or v == int(v))
        for v in items
    )
    if not ok:
        raise JobFailure(f"parameter '{name}' must be one or three {kind} in [{lo:g}, {hi:g}], not {params[name]!r}")
    return tuple(int(v) for v in items) if integer else tuple(float(v) for v in items)


def _choice(params: Mapping[str, str], name: str, default: str, choices: Mapping[str, str] | tuple[str, ...]) -> str:
    if name not in params:
        return default
    value = str(_json_value(params, name)).strip().lower()
    table = choices if isinstance(choices, Mapping) else {c: c for c in choices}
    if value not in table:
        names = sorted(set(table.values()))
        raise JobFailure(f"parameter '{name}' must be one of {', '.join(names)}, not {params[name]!r}")
    return table[value]


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _vec(values: Any) -> str:
    return json.dumps([round(float(v), 6) + 0.0 for v in values])  # + 0.0: no "-0.0"


# -- inputs --------------------------------------------------------------------------------


def _mesh_input(inputs: Mapping[str, JobInput], cache: ResultCache) -> tuple[Any, Any, str]:
    """``(vertices, faces, source)`` of the ``mesh`` input, or the built-in cube without one."""
    from . import meshes, meshio

    if "mesh" not in inputs:
        import numpy as np

        vertices, faces = meshio.weld(np.array(meshes.cube_triangles(10.0), dtype=np.float64))
        return vertices, faces, _BUILT_IN_CUBE
    item = inputs["mesh"]

    def parse() -> tuple[Any, Any]:
        try:
            return meshio.read_mesh(item.read(), item.filename)
        except meshio.MeshError as exc:
            raise JobFailure(f"input 'mesh' ({item.filename}): {exc}") from exc

    vertices, faces = cache.get_or_compute(("mesh", item.checksum), parse, lambda m: m[0].nbytes + m[1].nbytes)
    return vertices, faces, item.filename


def _volume_input(params: Mapping[str, str], inputs: Mapping[str, JobInput], job_type: str, cache: ResultCache) -> Any:
    from . import implicit

    if "volume" not in inputs:
        raise JobFailure(
            f"{job_type} has no 'volume' input: map one in its assets (e.g. 'volume: sample') "
            "or list a job that makes a volume in its needs"
        )
    item = inputs["volume"]
    resolution = _triple(params, "volume_resolution", None, lo=2, hi=4096, integer=True)
    offset = _triple(params, "volume_offset", None, lo=-1e9, hi=1e9)
    size = _triple(params, "volume_size", None, lo=1e-9, hi=1e9)

    def decode() -> Any:
        try:
            return implicit.decode_volume(item.read(), resolution=resolution, offset=offset, size=size)
        except implicit.VolumeError as exc:
            raise JobFailure(f"input 'volume' ({item.filename}): {exc}") from exc

    key = ("volume", item.checksum, resolution, offset, size)
    return key, cache.get_or_compute(key, decode, lambda v: v.values.nbytes)


def _surface(params: Mapping[str, str], inputs: Mapping[str, JobInput], job_type: str, cache: ResultCache) -> Any:
    """``(vertices, faces, stats)`` of the input volume's isosurface (shared by metrics and remesh)."""
    from . import implicit, meshio

    key, volume = _volume_input(params, inputs, job_type, cache)
    level = _number(params, "level", 0.0, lo=-1e9, hi=1e9)

    def compute() -> Any:
        vertices, faces = implicit.isosurface(volume, level)
        if len(faces) == 0:
            raise JobFailure(f"{job_type}: the volume has no surface at level {level:g} (it is all inside or outside)")
        return vertices, faces, meshio.mesh_stats(vertices, faces)

    return cache.get_or_compute(("surface", key, level), compute, lambda s: s[0].nbytes + s[1].nbytes)


# -- the job types -------------------------------------------------------------------------


def _preprocess(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshio

    vertices, faces, source = _mesh_input(inputs, cache)
    scale = _number(params, "scale", 1.0, lo=0, hi=1e6)
    fmt = _choice(params, "format", "stl", meshio.MESH_FORMATS)
    vertices = vertices * scale
    stats = meshio.mesh_stats(vertices, faces)
    return (
        {
            **_mesh_params(stats),
            "bounding_box": _vec([*stats.lo, *stats.hi]),
            "units": "mm",
            "source": source,
        },
        {"mesh": (fmt, meshio.write_mesh(vertices, faces, fmt, f"{label} (preprocessed)"))},
    )


def _compute_bvh(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshio

    vertices, faces, _ = _mesh_input(inputs, cache)
    leaf = int(_number(params, "leaf_size", 8, lo=0, hi=1024))
    data, info = meshio.build_bvh(vertices, faces, max(leaf, 1))
    return (
        {"nodes": str(info["nodes"]), "leaves": str(info["leaves"]), "depth": str(info["depth"]),
         "triangles": str(len(faces))},
        {"bvh": ("bin", data)},
    )


def _volume_outputs(volume: Any, extra: dict[str, str]) -> Outputs:
    from . import implicit

    return (
        {
            "patch_size": _vec(volume.size),
            "patch_offset": _vec(volume.offset),
            "patch_resolution": json.dumps(list(volume.resolution)),
            **extra,
        },
        {"volume": ("bin", implicit.encode_volume(volume))},
    )


def _from_mesh(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import implicit

    vertices, faces, source = _mesh_input(inputs, cache)
    res = _triple(params, "resolution", (_DEFAULT_MESH_RESOLUTION,) * 3, lo=implicit.MIN_SAMPLES,
                  hi=implicit.MAX_SAMPLES, integer=True)
    if "bvh" in inputs and not inputs["bvh"].read()[:5] == b"MFBVH":
        raise JobFailure(f"input 'bvh' ({inputs['bvh'].filename}) is not a BVH made by mesh/compute-bvh")
    try:
        volume = implicit.mesh_volume(vertices, faces, res[0] if len(set(res)) == 1 else res)
    except implicit.VolumeError as exc:
        raise JobFailure(f"parameter 'resolution': {exc}") from exc
    return _volume_outputs(volume, {"source": source})


def _lattice_parameters(params: Mapping[str, str]) -> dict[str, Any]:
    """The lattice a job asks for: its own parameters over what a Metafold ``graph`` says."""
    from .implicit import MAX_SAMPLES, MIN_SAMPLES, SHAPES

    merged: dict[str, str] = {}
    if "graph" in params:
        merged.update(_from_graph(_json_value(params, "graph")))
    merged.update({k: v for k, v in params.items() if k != "graph"})
    if "lattice" in merged and "shape" not in merged:
        merged["shape"] = merged["lattice"]
    d = DEFAULT_LATTICE
    return {
        "shape": _choice(merged, "shape", str(d["shape"]), SHAPES),
        "size": _triple(merged, "size", (d["size"],) * 3, lo=1e-3, hi=1e4),
        "cell_size": _number(merged, "cell_size", float(d["cell_size"]), lo=0, hi=1e4, unit=" mm"),
        "thickness": _number(merged, "thickness", float(d["thickness"]), lo=0, hi=1e4, unit=" mm"),
        "resolution": _triple(merged, "resolution", (d["resolution"],) * 3, lo=MIN_SAMPLES, hi=MAX_SAMPLES,
                              integer=True),
        "radius": _number(merged, "radius", math.nan, lo=0, hi=1e4, unit=" mm"),
    }


def _from_graph(graph: Any) -> dict[str, str]:
    """Read the few settings the sandbox understands from a Metafold shape graph.

    ``GenerateSamplePoints`` gives ``size`` and ``resolution``, ``SampleSurfaceLattice``
    gives ``lattice_type`` (shape) and ``scale`` (cell size), ``Threshold`` gives
    ``width`` (thickness); anything else is ignored.
    """
    found: dict[str, str] = {}
    operators = graph.get("operators") if isinstance(graph, dict) else None
    for op in operators if isinstance(operators, list) else []:
        if not isinstance(op, dict) or not isinstance(op.get("parameters"), dict):
            continue
        p = op["parameters"]
        kind = op.get("type")
        if kind == "GenerateSamplePoints":
            for key in ("size", "resolution"):
                if key in p:
                    found[key] = json.dumps(p[key])
        elif kind == "SampleSurfaceLattice":
            if "lattice_type" in p:
                found["shape"] = json.dumps(p["lattice_type"])
            scale = p.get("scale")
            if isinstance(scale, list) and scale and isinstance(scale[0], (int, float)):
                found["cell_size"] = json.dumps(scale[0])
        elif kind == "Threshold" and "width" in p:
            found["thickness"] = json.dumps(p["width"])
    return found


def _evaluate(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import implicit

    lattice = _lattice_parameters(params)
    radius = None if math.isnan(lattice["radius"]) else lattice["radius"]
    volume = implicit.lattice_volume(
        lattice["shape"], lattice["size"], lattice["cell_size"], lattice["thickness"], lattice["resolution"], radius
    )
    return _volume_outputs(volume, {"shape": lattice["shape"]})


def _metrics(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    _, _, stats = _surface(params, inputs, "implicit/metrics", cache)
    box = float((stats.hi - stats.lo).prod())
    return (
        {
            "volume": _fmt(stats.volume),
            "area": _fmt(stats.area),
            # the name Metafold's own simulation helpers read
            "interior_volume": _fmt(stats.volume),
            "relative_density": _fmt(stats.volume / box if box > 0 else 0.0),
            "bounding_box": _vec([*stats.lo, *stats.hi]),
        },
        {},
    )


def _mesh_params(stats: Any) -> dict[str, str]:
    """The output params every mesh-making job reports about its mesh (strings, as the API's are)."""
    return {
        "triangles": str(stats.triangles),
        "vertices": str(stats.vertices),
        "watertight": str(stats.watertight).lower(),
        "volume": _fmt(stats.volume),
        "area": _fmt(stats.area),
    }


def _from_volume(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshio

    fmt = _choice(params, "format", "stl", meshio.MESH_FORMATS)
    vertices, faces, stats = _surface(params, inputs, "mesh/from-volume", cache)
    return (
        {
            **_mesh_params(stats),
            "format": fmt,
        },
        {"mesh": (fmt, meshio.write_mesh(vertices, faces, fmt, label))},
    )


def _export(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshio

    vertices, faces, source = _mesh_input(inputs, cache)
    fmt = _choice(params, "format", "obj", meshio.MESH_FORMATS)
    return ({"format": fmt, "faces": str(len(faces)), "source": source},
            {"mesh": (fmt, meshio.write_mesh(vertices, faces, fmt, label))})


def _simulate(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshes

    load = _number(params, "load_N", 1000.0, lo=0, hi=1e9, unit=" N")
    peak = 0.731 * load
    return (
        {"max_von_mises_MPa": f"{peak:.3f}", "max_displacement_mm": f"{0.00042 * load:.5f}"},
        {"output": ("csv", meshes.results_csv(label))},
    )


def _postprocess(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
    from . import meshes

    return (
        {"max_von_mises_MPa": "731.000", "safety_factor": "1.37"},
        {"output": ("csv", meshes.results_csv(label, rows=3))},
    )


def _generic(job_type: str) -> Callable[..., Outputs]:
    def run(params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache) -> Outputs:
        return ({"status": "ok"}, {"log": ("txt", f"{label} ({job_type}) finished in the Metafold sandbox\n".encode())})

    return run


_KINDS = {
    "mesh/preprocess": JobKind(("mesh",), ("mesh",), None, _preprocess),
    "mesh/compute-bvh": JobKind(("mesh",), ("bvh",), None, _compute_bvh),
    "implicit/from-mesh": JobKind(("mesh", "bvh"), ("volume",), None, _from_mesh),
    "implicit/evaluate": JobKind((), ("volume",), None, _evaluate),
    "implicit/metrics": JobKind(("volume",), (), None, _metrics),
    "mesh/from-volume": JobKind(("volume",), ("mesh",), "export", _from_volume),
    "mesh/export": JobKind(("mesh",), ("mesh",), "export", _export),
}
_POSTPROCESS = JobKind(("data",), ("output",), "simulation", _postprocess)
_SIMULATION = JobKind(("mesh", "volume"), ("output",), "simulation", _simulate)


def kind_of(job_type: str) -> JobKind:
    """The interface of ``job_type`` (unknown types make a log file and count nothing)."""
    if job_type in _KINDS:
        return _KINDS[job_type]
    if job_type.startswith("sim/postprocess/"):
        return _POSTPROCESS
    if job_type.startswith("sim/"):
        return _SIMULATION
    return JobKind((), ("log",), None, _generic(job_type))


def run_job(
    job_type: str, params: Mapping[str, str], inputs: Mapping[str, JobInput], label: str, cache: ResultCache
) -> Outputs:
    """Compute a finished job's ``(output params, {output: (extension, bytes)})``.

    Raises:
        JobFailure: bad parameters or unusable inputs (the message is the job's error).
    """
    key = (job_type, label, tuple(sorted(params.items())),
           tuple(sorted((name, item.checksum) for name, item in inputs.items())))

    def size(result: Outputs) -> int:
        return sum(len(data) for _, data in result[1].values())

    result = cache.get_or_compute(("job", key), lambda: kind_of(job_type).run(params, inputs, label, cache), size)
    return dict(result[0]), dict(result[1])
