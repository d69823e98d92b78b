"""Triangle meshes as numpy arrays for the sandbox's jobs: read, write, measure, BVH.

A mesh here is ``(vertices, faces)``: float64 ``(V, 3)`` positions in mm and
int64 ``(F, 3)`` vertex indices, counter-clockwise seen from outside. The
readers accept what users upload (STL ASCII or binary, Wavefront OBJ, PLY ASCII
or binary); the writers produce files any mesh tool opens. Everything is plain
numpy, vectorised; nothing here knows about HTTP or the store.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "MeshError",
    "read_mesh",
    "weld",
    "write_mesh",
    "mesh_stats",
    "MeshStats",
    "build_bvh",
    "MESH_FORMATS",
]

MESH_FORMATS = ("stl", "obj", "ply")
_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}


class MeshError(ValueError):
    """A file that cannot be read as a triangle mesh (the message says why)."""


# -- reading ---------------------------------------------------------------------------------


def read_mesh(data: bytes, filename: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Parse STL (ASCII or binary), OBJ or PLY bytes into a welded ``(vertices, faces)``.

    The format is taken from the content (the filename's extension only breaks ties).

    Raises:
        MeshError: not a mesh in one of those formats, or a mesh without triangles.
    """
    name = filename.lower()
    if data.startswith(b"ply"):
        corners = None
        vertices, faces = _read_ply(data)
    elif _is_binary_stl(data):
        corners = _read_stl_binary(data)
    elif data.lstrip().startswith(b"solid") and b"facet" in data[:4096]:
        corners = _read_stl_ascii(data)
    elif name.endswith(".obj") or re.search(rb"^\s*v\s", data[:65536], re.MULTILINE):
        corners = None
        vertices, faces = _read_obj(data)
    else:
        raise MeshError("not a mesh file this sandbox reads (STL, OBJ or PLY)")
    if corners is not None:
        if len(corners) == 0:
            raise MeshError("the STL file has no triangles")
        vertices, faces = weld(corners)
    if len(faces) == 0:
        raise MeshError("the mesh has no triangles")
    return vertices, faces


def _is_binary_stl(data: bytes) -> bool:
    if len(data) < 84:
        return False
    (count,) = struct.unpack_from("<I", data, 80)
    return len(data) == 84 + 50 * count


def _read_stl_binary(data: bytes) -> np.ndarray:
    (count,) = struct.unpack_from("<I", data, 80)
    records = np.frombuffer(data, dtype=_STL_RECORD, count=count, offset=84)
    return records["corners"].astype(np.float64)


def _read_stl_ascii(data: bytes) -> np.ndarray:
    numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
    if len(numbers) % 3:
        raise MeshError("the ASCII STL file has a facet without three vertices")
    try:
        return np.array(numbers, dtype=np.float64).reshape(-1, 3, 3)
    except ValueError as exc:
        raise MeshError(f"the ASCII STL file has a vertex that is not a number ({exc})") from exc


def _read_obj(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    vertices: list[list[float]] = []
    faces: list[tuple[int, int, int]] = []
    for number, raw in enumerate(data.splitlines(), 1):
        parts = raw.split()
        if not parts:
            continue
        try:
            if parts[0] == b"v":
                vertices.append([float(x) for x in parts[1:4]])
            elif parts[0] == b"f":
                # "f 1/2/3 4//6 -1": the vertex index comes first; negative counts from the end
                ids = [int(p.split(b"/")[0]) for p in parts[1:]]
                ids = [i - 1 if i > 0 else len(vertices) + i for i in ids]
                faces.extend((ids[0], ids[k], ids[k + 1]) for k in range(1, len(ids) - 1))
        except ValueError as exc:
            raise MeshError(f"OBJ line {number} is malformed: {raw[:60]!r}") from exc
    if not faces:
        raise MeshError("the OBJ file has no faces")
    v = np.array(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.array(faces, dtype=np.int64)
    if f.min() < 0 or f.max() >= len(v):
        raise MeshError("the OBJ file has a face that refers to a missing vertex")
    return v, f


def _read_ply(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    end = data.find(b"end_header")
    if end < 0:
        raise MeshError("the PLY file has no end_header line")
    body_start = data.index(b"\n", end) + 1
    fmt = "ascii"
    elements: list[tuple[str, int, list[tuple]]] = []
    for raw in data[:end].decode("ascii", "replace").splitlines()[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format":
            fmt = words[1]
        elif words[0] == "element":
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property" and elements:
            if words[1] == "list":
                elements[-1][2].append(("list", words[4], _ply_type(words[2]), _ply_type(words[3])))
            else:
                elements[-1][2].append(("scalar", words[2], _ply_type(words[1])))
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise MeshError(f"unknown PLY format {fmt!r}")
    if fmt == "ascii":
        tokens = data[body_start:].split()
        return _ply_ascii(elements, tokens)
    return _ply_binary(elements, data, body_start, "<" if fmt == "binary_little_endian" else ">")


def _ply_type(name: str) -> str:
    try:
        return _PLY_TYPES[name]
    except KeyError:
        raise MeshError(f"unknown PLY property type {name!r}") from None


def _ply_ascii(elements: list, tokens: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    pos = 0
    vertices = faces = None
    for name, count, props in elements:
        rows = []
        for _ in range(count):
            row: dict[str, object] = {}
            for prop in props:
                if prop[0] == "list":
                    n = int(tokens[pos])
                    row[prop[1]] = [int(t) for t in tokens[pos + 1: pos + 1 + n]]
                    pos += 1 + n
                else:
                    row[prop[1]] = float(tokens[pos])
                    pos += 1
            rows.append(row)
        if name == "vertex":
            vertices = np.array([[r["x"], r["y"], r["z"]] for r in rows], dtype=np.float64).reshape(-1, 3)
        elif name == "face":
            key = next((p[1] for p in props if p[0] == "list"), None)
            faces = _fan([r[key] for r in rows] if key else [])
    return _ply_result(vertices, faces)


def _ply_binary(elements: list, data: bytes, offset: int, order: str) -> tuple[np.ndarray, np.ndarray]:
    vertices = faces = None
    for name, count, props in elements:
        if all(p[0] == "scalar" for p in props):
            dtype = np.dtype([(p[1], order + p[2]) for p in props])
            table = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
            offset += dtype.itemsize * count
            if name == "vertex":
                vertices = np.stack([table[a].astype(np.float64) for a in ("x", "y", "z")], axis=1)
            continue
        # Lists: the fast path assumes triangles (count 3) everywhere and checks it.
        fields = []
        for i, p in enumerate(props):
            if p[0] == "list":
                fields += [(f"n{i}", order + p[2]), (p[1], order + p[3], (3,))]
            else:
                fields.append((p[1], order + p[2]))
        dtype = np.dtype(fields)
        list_counts = [f"n{i}" for i, p in enumerate(props) if p[0] == "list"]
        table = np.frombuffer(data, dtype=dtype, count=count, offset=offset) if count else np.zeros(0, dtype)
        if count and all((table[c] == 3).all() for c in list_counts):
            offset += dtype.itemsize * count
            if name == "face":
                key = next(p[1] for p in props if p[0] == "list")
                faces = table[key].astype(np.int64)
            continue
        rows, offset = _ply_binary_rows(props, count, data, offset, order)
        if name == "face":
            key = next(p[1] for p in props if p[0] == "list")
            faces = _fan([r[key] for r in rows])
    return _ply_result(vertices, faces)


def _ply_binary_rows(props: list, count: int, data: bytes, offset: int, order: str) -> tuple[list, int]:
    rows = []
    for _ in range(count):
        row: dict[str, object] = {}
        for p in props:
            if p[0] == "list":
                size_t = np.dtype(order + p[2])
                n = int(np.frombuffer(data, size_t, 1, offset)[0])
                offset += size_t.itemsize
                item_t = np.dtype(order + p[3])
                row[p[1]] = np.frombuffer(data, item_t, n, offset).tolist()
                offset += item_t.itemsize * n
            else:
                t = np.dtype(order + p[2])
                row[p[1]] = float(np.frombuffer(data, t, 1, offset)[0])
                offset += t.itemsize
        rows.append(row)
    return rows, offset


def _fan(polygons: list) -> np.ndarray:
    tris = [(p[0], p[k], p[k + 1]) for p in polygons for k in range(1, len(p) - 1)]
    return np.array(tris, dtype=np.int64).reshape(-1, 3)


def _ply_result(vertices: np.ndarray | None, faces: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    if vertices is None or faces is None or len(faces) == 0:
        raise MeshError("the PLY file has no vertex or face element")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError("the PLY file has a face that refers to a missing vertex")
    return vertices, faces


def weld(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Turn ``(F, 3, 3)`` triangle corners into shared vertices and ``(F, 3)`` faces.

    Corners at exactly the same position become one vertex (STL repeats them per facet).
    """
    flat = np.ascontiguousarray(corners.reshape(-1, 3))
    vertices, inverse = np.unique(flat, axis=0, return_inverse=True)
    return vertices, inverse.reshape(-1, 3).astype(np.int64)


# -- writing ---------------------------------------------------------------------------------


def write_mesh(vertices: np.ndarray, faces: np.ndarray, fmt: str = "stl", name: str = "mesh") -> bytes:
    """Encode a mesh as binary STL, OBJ text or binary little-endian PLY.

    Raises:
        ValueError: an unknown ``fmt``.
    """
    if fmt == "stl":
        return _write_stl(vertices, faces, name)
    if fmt == "obj":
        return _write_obj(vertices, faces, name)
    if fmt == "ply":
        return _write_ply(vertices, faces, name)
    raise ValueError(f"unknown mesh format {fmt!r}; expected one of {', '.join(MESH_FORMATS)}")


def _write_stl(vertices: np.ndarray, faces: np.ndarray, name: str) -> bytes:
    corners = vertices[faces]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    lengths = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = np.divide(normals, lengths, out=np.zeros_like(normals), where=lengths > 0)
    records = np.zeros(len(faces), dtype=_STL_RECORD)
    records["normal"] = normals
    records["corners"] = corners
    header = name.encode("ascii", "replace")[:80].ljust(80, b" ")
    return header + struct.pack("<I", len(faces)) + records.tobytes()


def _write_obj(vertices: np.ndarray, faces: np.ndarray, name: str) -> bytes:
    lines = [f"# {name}: generated by the Metafold sandbox", f"o {name.replace(' ', '_')}"]
    lines += [f"v {x:.6g} {y:.6g} {z:.6g}" for x, y, z in vertices.tolist()]
    lines += [f"f {a} {b} {c}" for a, b, c in (faces + 1).tolist()]
    return ("\n".join(lines) + "\n").encode("ascii")


def _write_ply(vertices: np.ndarray, faces: np.ndarray, name: str) -> bytes:
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"comment {name}: generated by the Metafold sandbox\n"
        f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
        f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    face_records = np.zeros(len(faces), dtype=[("n", "u1"), ("v", "<i4", (3,))])
    face_records["n"] = 3
    face_records["v"] = faces
    return header + vertices.astype("<f4").tobytes() + face_records.tobytes()


# -- measuring -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshStats:
    """What :func:`mesh_stats` measures."""

    triangles: int
    vertices: int
    volume: float
    area: float
    watertight: bool
    lo: np.ndarray
    hi: np.ndarray


def mesh_stats(vertices: np.ndarray, faces: np.ndarray) -> MeshStats:
    """Volume (mm³, divergence theorem), area (mm²), bounds and whether the mesh is watertight.

    Watertight means every edge is shared by exactly two faces that run along it in
    opposite directions (closed and consistently oriented), which is what makes the
    volume meaningful.
    """
    corners = vertices[faces]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    cross = np.cross(b - a, c - a)
    area = 0.5 * float(np.linalg.norm(cross, axis=1).sum())
    volume = float(np.einsum("ij,ij->", a, np.cross(b, c))) / 6.0
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    n = np.int64(len(vertices))
    forward = np.sort(directed[:, 0] * n + directed[:, 1])
    backward = np.sort(directed[:, 1] * n + directed[:, 0])
    # closed and consistently wound: each directed edge once, and its reverse once too
    watertight = bool(len(faces) > 0 and (np.diff(forward) != 0).all() and np.array_equal(forward, backward))
    used = vertices[faces.ravel()]
    return MeshStats(
        triangles=int(len(faces)),
        vertices=int(np.count_nonzero(np.bincount(faces.ravel(), minlength=len(vertices)))),
        volume=volume,
        area=area,
        watertight=watertight,
        lo=used.min(axis=0, initial=np.inf),
        hi=used.max(axis=0, initial=-np.inf),
    )


def build_bvh(vertices: np.ndarray, faces: np.ndarray, leaf_size: int = 8) -> tuple[bytes, dict[str, int]]:
    """A bounding volume hierarchy over the triangles (median split on the longest axis).

    Returns:
        ``(data, info)``: ``b"MFBVH\\0\\0\\1"``, a uint32 node count, then per node six
        float32 bounds (min xyz, max xyz) and four int32 (left and right child, or -1 -1
        for a leaf; a leaf's first position in the triangle order and its triangle
        count), then the triangle order as int32. ``info`` has ``nodes``, ``leaves`` and
        ``depth``.
    """
    corners = vertices[faces]
    lo_t, hi_t = corners.min(axis=1), corners.max(axis=1)
    centroids = corners.mean(axis=1)
    order = np.arange(len(faces))
    nodes: list[list[Any]] = []
    depth = leaves = 0
    stack = [(0, len(faces), 0, -1, 0)]  # start, stop, depth, parent index, which child
    while stack:
        start, stop, level, parent, side = stack.pop()
        idx = order[start:stop]
        lo, hi = lo_t[idx].min(axis=0), hi_t[idx].max(axis=0)
        me = len(nodes)
        nodes.append([*lo, *hi, -1, -1, -1, 0])
        if parent >= 0:
            nodes[parent][6 + side] = me
        depth = max(depth, level)
        if stop - start <= leaf_size:
            nodes[me][8:] = [start, stop - start]
            leaves += 1
            continue
        axis = int(np.argmax(hi - lo))
        ranked = idx[np.argsort(centroids[idx, axis], kind="stable")]
        order[start:stop] = ranked
        mid = (start + stop) // 2
        stack.append((mid, stop, level + 1, me, 1))
        stack.append((start, mid, level + 1, me, 0))
    table = np.zeros(len(nodes), dtype=[("bounds", "<f4", (6,)), ("links", "<i4", (4,))])
    rows = np.array(nodes, dtype=np.float64)
    table["bounds"] = rows[:, :6]
    table["links"] = rows[:, 6:].astype(np.int64)
    data = b"MFBVH\x00\x00\x01" + struct.pack("<I", len(nodes)) + table.tobytes() + order.astype("<i4").tobytes()
    return data, {"nodes": len(nodes), "leaves": leaves, "depth": depth}
