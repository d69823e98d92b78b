"""Sampled implicit shapes for the sandbox's jobs: lattices, meshes as volumes, isosurfaces.

A *volume* is a scalar field sampled on a regular grid (a "patch"): negative inside
the solid, positive outside, roughly a distance in mm near the surface. The sandbox
stores it as a ``.bin`` asset (see :func:`encode_volume`) and turns it back into a
closed triangle mesh with :func:`isosurface` (marching tetrahedra on the Kuhn
subdivision of each grid cell, which is crack-free, so the mesh is watertight).
Every figure a job reports (volume, area) comes from that mesh, so a study's
numbers follow its parameters and agree with the mesh file it downloads.

Plain numpy, vectorised; nothing here knows about HTTP or the store.
"""

from __future__ import annotations

import itertools
import struct
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Volume",
    "VolumeError",
    "SHAPES",
    "MIN_SAMPLES",
    "MAX_SAMPLES",
    "encode_volume",
    "decode_volume",
    "lattice_volume",
    "mesh_volume",
    "isosurface",
]

_MAGIC = b"MFSDF\x00\x00\x02"
_HEADER = struct.Struct("<8s3H2x3f3f")  # magic, resolution, offset (mm), size (mm)
# Per axis. 96³ samples of a lattice take ~2 s and ~400 MB to mesh: the most a sandbox should spend.
MIN_SAMPLES, MAX_SAMPLES = 4, 96
_MESH_MARGIN = 2  # grid nodes outside a mesh's bounding box, so its volume is closed

# TPMS names as Metafold's lattice_type spells them (lower case) -> the sandbox's shape
SHAPES = {
    "gyroid": "gyroid",
    "schwarz-p": "schwarz-p", "schwarzp": "schwarz-p", "schwarz": "schwarz-p", "p": "schwarz-p",
    "diamond": "diamond", "schwarzd": "diamond", "schwarz-d": "diamond", "d": "diamond",
    "sphere": "sphere",
}


class VolumeError(ValueError):
    """A volume or a sampling request that cannot be used (the message says why)."""


@dataclass
class Volume:
    """A sampled field: ``values[i, j, k]`` at ``offset + (i, j, k) * spacing``."""

    values: np.ndarray  # float32 (nx, ny, nz)
    offset: np.ndarray  # float64 (3,) mm
    size: np.ndarray  # float64 (3,) mm, from the first to the last sample

    @property
    def resolution(self) -> tuple[int, int, int]:
        """Samples along x, y and z."""
        return tuple(int(n) for n in self.values.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> np.ndarray:
        """Distance between neighbouring samples along each axis (mm)."""
        return self.size / (np.array(self.values.shape) - 1)


# -- the .bin format ---------------------------------------------------------------------


def encode_volume(volume: Volume) -> bytes:
    """The sandbox's volume file: a 40-byte header, then float32 samples, x fastest.

    Header: ``b"MFSDF\\0\\0\\2"``, three uint16 sample counts (x, y, z), two bytes of
    padding, three float32 offsets and three float32 sizes in mm (the ``patch_*``
    output parameters of the job that made it).
    """
    header = _HEADER.pack(_MAGIC, *volume.resolution, *volume.offset, *volume.size)
    return header + np.asarray(volume.values, dtype="<f4").tobytes(order="F")


def decode_volume(
    data: bytes,
    *,
    resolution: list[int] | None = None,
    offset: list[float] | None = None,
    size: list[float] | None = None,
) -> Volume:
    """Read a volume written by :func:`encode_volume`, or raw float32 samples.

    Raw samples (no header) need ``resolution``, as Metafold's ``volume_resolution``
    parameter gives it; ``offset`` defaults to 0 and ``size`` to one mm per sample step.

    Raises:
        VolumeError: a header that does not match the data, or raw data without a
            resolution that fits it.
    """
    shape: tuple[int, ...]
    if data[:8] == _MAGIC and len(data) >= _HEADER.size:
        _, nx, ny, nz, *rest = _HEADER.unpack_from(data)
        shape = (nx, ny, nz)
        start = _HEADER.size
        offset = offset or rest[:3]
        size = size or rest[3:]
    else:
        if resolution is None:
            raise VolumeError(
                "the volume has no sandbox header; give its 'volume_resolution' (and 'volume_size', "
                "'volume_offset') parameters"
            )
        shape = tuple(int(n) for n in resolution)
        start = 0
    if len(shape) != 3 or min(shape) < 2:
        raise VolumeError(f"a volume needs at least 2 samples along each axis, not {list(shape)}")
    count = shape[0] * shape[1] * shape[2]
    if len(data) - start != 4 * count:
        raise VolumeError(f"the volume has {len(data) - start} bytes of samples; {list(shape)} needs {4 * count}")
    values = np.frombuffer(data, dtype="<f4", count=count, offset=start).reshape(shape, order="F")
    size_mm = np.array(size if size is not None else np.array(shape) - 1, dtype=np.float64)
    return Volume(values=values, offset=np.array(offset or (0.0, 0.0, 0.0), dtype=np.float64), size=size_mm)


# -- sampling ------------------------------------------------------------------------------


def _grid_axes(offset: np.ndarray, spacing: np.ndarray, shape: tuple[int, ...]) -> list[np.ndarray]:
    return [offset[a] + spacing[a] * np.arange(shape[a]) for a in range(3)]


def _check_samples(resolution: tuple[int, int, int]) -> None:
    if min(resolution) < MIN_SAMPLES or max(resolution) > MAX_SAMPLES:
        raise VolumeError(f"resolution must be {MIN_SAMPLES}..{MAX_SAMPLES} samples per axis, not {list(resolution)}")


def lattice_volume(
    shape: str,
    size: tuple[float, float, float],
    cell_size: float,
    thickness: float,
    resolution: tuple[int, int, int],
    radius: float | None = None,
) -> Volume:
    """Sample a TPMS sheet lattice (or a sphere) clipped to a box centred on the origin.

    The sheet is the set of points within ``thickness / 2`` of the minimal surface
    (distance estimated as ``|g| / |∇g|``); the box caps it, so the solid is closed.
    One extra sample outside the box on every side keeps the caps inside the patch.

    Args:
        shape: a key of :data:`SHAPES` (already normalised).
        size: box edge lengths in mm.
        cell_size: lattice period in mm.
        thickness: sheet thickness in mm.
        resolution: samples across the box along x, y and z.
        radius: sphere radius in mm (shape ``sphere``; default 0.4 × the smallest edge).
    """
    _check_samples(resolution)
    box = np.array(size, dtype=np.float64)
    n = np.array(resolution)
    spacing = box / (n - 1)
    offset = -box / 2 - spacing
    patch_shape = tuple(int(v) for v in n + 2)
    x, y, z = np.meshgrid(*_grid_axes(offset, spacing, patch_shape), indexing="ij", sparse=True)
    if shape == "sphere":
        r = radius if radius is not None else 0.4 * float(box.min())
        field = np.sqrt(x * x + y * y + z * z) - r
    else:
        k = 2 * np.pi / cell_size
        g, gx, gy, gz = _tpms(shape, k * x, k * y, k * z)
        slope = k * np.sqrt(gx * gx + gy * gy + gz * gz)
        # |∇g| vanishes only far from the surface (where |g| is large), so a floor is harmless
        field = np.abs(g) / np.maximum(slope, 0.05 * k) - thickness / 2
    half = box / 2
    outside_box = np.maximum(np.maximum(np.abs(x) - half[0], np.abs(y) - half[1]), np.abs(z) - half[2])
    values = np.maximum(field, outside_box).astype(np.float32)
    return Volume(values=values, offset=offset, size=spacing * (np.array(patch_shape) - 1))


def _tpms(shape: str, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, ...]:
    """The level-set function of a triply periodic minimal surface and its gradient (in phase units)."""
    sx, cx, sy, cy, sz, cz = np.sin(x), np.cos(x), np.sin(y), np.cos(y), np.sin(z), np.cos(z)
    if shape == "gyroid":
        g = sx * cy + sy * cz + sz * cx
        return g, cx * cy - sz * sx, cy * cz - sx * sy, cz * cx - sy * sz
    if shape == "schwarz-p":
        g = cx + cy + cz
        return g, -sx, -sy, -sz
    if shape == "diamond":
        g = sx * sy * sz + sx * cy * cz + cx * sy * cz + cx * cy * sz
        gx = cx * sy * sz + cx * cy * cz - sx * sy * cz - sx * cy * sz
        gy = sx * cy * sz - sx * sy * cz + cx * cy * cz - cx * sy * sz
        gz = sx * sy * cz - sx * cy * sz - cx * sy * sz + cx * cy * cz
        return g, gx, gy, gz
    raise VolumeError(f"unknown shape {shape!r}")


def mesh_volume(vertices: np.ndarray, faces: np.ndarray, resolution: tuple[int, int, int] | int) -> Volume:
    """Sample a closed triangle mesh into a signed field on a grid around it.

    Inside/outside comes from ray parity along x, y and z (a majority vote, so a
    small hole does not flood the volume); the magnitude is the distance to the
    nearest surface crossing along those axes, which is exact where a grid edge
    crosses the surface, so the isosurface reproduces flat faces faithfully.

    Args:
        resolution: samples along the longest side of the patch (the others get the
            same spacing), or samples along x, y and z.
    """
    corners = vertices[faces]
    lo, hi = corners.reshape(-1, 3).min(axis=0), corners.reshape(-1, 3).max(axis=0)
    extent = np.maximum(hi - lo, 1e-9)
    inner = 2 * _MESH_MARGIN + 1
    if min(np.atleast_1d(resolution)) < inner + 3:
        raise VolumeError(f"sampling a mesh needs at least {inner + 3} samples per axis, not {resolution}")
    if isinstance(resolution, int):
        _check_samples((resolution,) * 3)
        spacing = np.full(3, extent.max() / (resolution - inner))
        shape = tuple(int(v) for v in np.ceil(extent / spacing).astype(int) + inner)
        shape = tuple(max(s, MIN_SAMPLES) for s in shape)
    else:
        _check_samples(resolution)
        shape = tuple(int(v) for v in resolution)
        spacing = extent / (np.array(shape) - inner)
    offset = (lo + hi) / 2 - spacing * (np.array(shape) - 1) / 2
    axes = _grid_axes(offset, spacing, shape)
    votes = np.zeros(shape, dtype=np.int8)
    distance = np.full(shape, np.inf)
    for axis in range(3):
        inside, dist = _ray_cast(corners, axes, axis)
        votes += inside
        np.minimum(distance, dist, out=distance)
    distance = np.minimum(distance, 3 * spacing.max())  # far from the surface, "far" is enough
    values = np.where(votes >= 2, -distance, distance).astype(np.float32)
    return Volume(values=values, offset=offset, size=spacing * (np.array(shape) - 1))


def _ray_cast(corners: np.ndarray, axes: list[np.ndarray], axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Parity and distance to the nearest crossing along ``axis``, for every grid node."""
    u, v = [a for a in range(3) if a != axis]
    au, av, aw = axes[u], axes[v], axes[axis]
    hu, hv = au[1] - au[0], av[1] - av[0]
    # Rays pass a hair beside the nodes, so no ray runs exactly through a mesh edge or vertex.
    ray_u, ray_v = au + hu * 1.3e-6, av + hv * 0.7e-6
    p = corners[:, :, [u, v]]
    lo = np.searchsorted(ray_u, p[:, :, 0].min(axis=1)), np.searchsorted(ray_v, p[:, :, 1].min(axis=1))
    hi = np.searchsorted(ray_u, p[:, :, 0].max(axis=1)), np.searchsorted(ray_v, p[:, :, 1].max(axis=1))
    cu, cv = np.maximum(hi[0] - lo[0], 0), np.maximum(hi[1] - lo[1], 0)
    counts = cu * cv
    tri = np.repeat(np.arange(len(corners)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    iu = lo[0][tri] + local // cv[tri]
    iv = lo[1][tri] + local % cv[tri]
    a, b, c = (p[tri, k] for k in range(3))
    q = np.stack([ray_u[iu], ray_v[iv]], axis=1)

    def edge(p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
        return (p1[:, 0] - p0[:, 0]) * (q[:, 1] - p0[:, 1]) - (p1[:, 1] - p0[:, 1]) * (q[:, 0] - p0[:, 0])

    e0, e1, e2 = edge(b, c), edge(c, a), edge(a, b)
    total = e0 + e1 + e2
    hit = (total != 0) & (((e0 >= 0) & (e1 >= 0) & (e2 >= 0)) | ((e0 <= 0) & (e1 <= 0) & (e2 <= 0)))
    w = corners[tri[hit]][:, :, axis]
    t = total[hit]
    depth = (e0[hit] * w[:, 0] + e1[hit] * w[:, 1] + e2[hit] * w[:, 2]) / t
    iu, iv = iu[hit], iv[hit]
    nw = len(aw)
    # first node at or above each crossing; crossings are counted below every node from there
    k = np.clip(np.searchsorted(aw, depth), 0, nw)
    shape2 = (len(au), len(av))
    below_count = np.zeros(shape2 + (nw + 1,), dtype=np.int32)
    np.add.at(below_count, (iu, iv, k), 1)
    parity = (np.cumsum(below_count, axis=2)[:, :, :nw] & 1).astype(np.int8)
    last_below = np.full(shape2 + (nw + 1,), -np.inf)
    np.maximum.at(last_below, (iu, iv, k), depth)
    last_below = np.maximum.accumulate(last_below, axis=2)[:, :, :nw]
    next_above = np.full(shape2 + (nw,), np.inf)
    above = k > 0  # a crossing at or below the first node is above none
    np.minimum.at(next_above, (iu[above], iv[above], k[above] - 1), depth[above])
    next_above = np.minimum.accumulate(next_above[:, :, ::-1], axis=2)[:, :, ::-1]
    dist = np.minimum(aw - last_below, next_above - aw)
    order = [0, 0, 0]
    order[u], order[v], order[axis] = 0, 1, 2
    return np.transpose(parity, order), np.transpose(dist, order)


# -- isosurface ----------------------------------------------------------------------------

# The unit cube's corners as bit masks (x = 1, y = 2, z = 4) and its Kuhn subdivision: six
# tetrahedra around the 0-7 diagonal, one per order in which a path from corner 0 to corner 7
# steps along the axes. Every cell is cut the same way, so neighbouring cells share their
# face triangulations and the surface has no cracks.
_KUHN = np.array([[0, a, a | b, 7] for a, b, _ in itertools.permutations((1, 2, 4))], dtype=np.int64)
_TET_EDGES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]


def _case_table() -> tuple[np.ndarray, np.ndarray]:
    """Triangles for each Kuhn tetrahedron and inside/outside case, as tetrahedron edge numbers.

    Returns:
        ``(tris, count)``: ``tris[tet, case]`` holds up to two triangles, each wound
        counter-clockwise seen from outside (checked once here on the unit cube, so
        no triangle needs its orientation tested at run time); ``count[case]`` says
        how many are used.
    """
    edge_of = {pair: n for n, pair in enumerate(_TET_EDGES)}
    edge_of.update({(b, a): n for (a, b), n in list(edge_of.items())})
    unit = np.array([[c & 1, c >> 1 & 1, c >> 2 & 1] for c in range(8)], dtype=np.float64)
    tris = np.zeros((len(_KUHN), 16, 2, 3), dtype=np.int64)
    count = np.zeros(16, dtype=np.int64)
    for case in range(16):
        inside = [v for v in range(4) if case >> v & 1]
        outside = [v for v in range(4) if not case >> v & 1]
        if len(inside) in (1, 3):
            lone, others = (inside[0], outside) if len(inside) == 1 else (outside[0], inside)
            shapes = [[edge_of[lone, o] for o in others]]
        elif len(inside) == 2:
            (a, b), (c, d) = inside, outside
            quad = [edge_of[a, c], edge_of[a, d], edge_of[b, d], edge_of[b, c]]  # in order round the quad
            shapes = [[quad[0], quad[1], quad[2]], [quad[0], quad[2], quad[3]]]
        else:
            continue
        count[case] = len(shapes)
        for t, corners in enumerate(_KUHN):
            pos = unit[corners]
            mid = np.array([(pos[p] + pos[q]) / 2 for p, q in _TET_EDGES])
            outward = pos[outside].mean(axis=0) - pos[inside].mean(axis=0)
            for n, tri in enumerate(shapes):
                v0, v1, v2 = mid[tri]
                flip = np.dot(np.cross(v1 - v0, v2 - v0), outward) < 0
                tris[t, case, n] = [tri[0], tri[2], tri[1]] if flip else tri
    return tris, count


_CASE_TRIS, _CASE_COUNT = _case_table()


def isosurface(volume: Volume, level: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The closed surface ``values == level`` as ``(vertices, faces)``, faces facing outwards.

    Samples below ``level`` are inside. The grid is padded with one far-outside sample
    on every side first, so a solid that reaches the patch's border is capped at the
    border and the mesh is always closed. A volume with nothing inside gives an empty mesh.
    """
    spacing = volume.spacing
    values = np.asarray(volume.values, dtype=np.float64) - level
    finite = np.isfinite(values)
    # far outside, so a solid that reaches the border is capped right at it (within the 1e-3 clip below)
    pad = 1e6 * (float(np.abs(values[finite]).max(initial=0.0)) + float(spacing.max()))
    f = np.pad(np.where(finite, values, pad), 1, constant_values=pad)  # NaN or inf samples count as outside
    f[f == 0] = 1e-12 * float(spacing.max())  # no sample exactly on the surface: no zero-area triangles
    origin = volume.offset - spacing
    nx, ny, nz = f.shape
    strides = np.array([ny * nz, nz, 1], dtype=np.int64)
    corner_step = np.array([(c & 1) * strides[0] + (c >> 1 & 1) * strides[1] + (c >> 2 & 1) * strides[2]
                            for c in range(8)], dtype=np.int64)
    flat = f.ravel()
    inside = f < 0
    # cells with both inside and outside corners: only those can hold surface
    cell_in = np.zeros((nx - 1, ny - 1, nz - 1), dtype=np.int8)
    for c in range(8):
        dx, dy, dz = c & 1, c >> 1 & 1, c >> 2 & 1
        cell_in += inside[dx:nx - 1 + dx, dy:ny - 1 + dy, dz:nz - 1 + dz]
    ci, cj, ck = np.nonzero((cell_in > 0) & (cell_in < 8))
    base = ci * strides[0] + cj * strides[1] + ck
    nodes = (base[:, None, None] + corner_step[_KUHN][None, :, :]).reshape(-1, 4)  # 6 tetrahedra per cell
    kind = np.tile(np.arange(len(_KUHN)), len(base))
    case = ((flat[nodes] < 0) * np.array([1, 2, 4, 8])).sum(axis=1)
    ntri = _CASE_COUNT[case]
    keep = ntri > 0
    nodes, kind, case, ntri = nodes[keep], kind[keep], case[keep], ntri[keep]
    tet = np.repeat(np.arange(len(case)), ntri)
    slot = np.arange(len(tet)) - np.repeat(np.cumsum(ntri) - ntri, ntri)
    tri_edges = _CASE_TRIS[kind[tet], case[tet], slot]  # (T, 3) tetrahedron edge numbers, wound outwards
    ends = np.array(_TET_EDGES, dtype=np.int64)
    tet_nodes = nodes[tet]
    p = np.take_along_axis(tet_nodes, ends[tri_edges, 0], axis=1)
    q = np.take_along_axis(tet_nodes, ends[tri_edges, 1], axis=1)
    # one vertex per grid edge crossed, shared by every triangle that uses the edge
    key = np.minimum(p, q) * np.int64(flat.size) + np.maximum(p, q)
    unique, inverse = np.unique(key.ravel(), return_inverse=True)
    ep, eq = unique // flat.size, unique % flat.size
    fp, fq = flat[ep], flat[eq]
    # Kept a hair away from the grid nodes: vertices on different edges of one node stay apart even in
    # float32, so a reader that welds coincident vertices (STL has none to share) still gets a closed mesh.
    t = np.clip(fp / (fp - fq), 1e-3, 1 - 1e-3)[:, None]
    vertices = _node_position(ep, f.shape, origin, spacing) * (1 - t) + _node_position(eq, f.shape, origin, spacing) * t
    return vertices, inverse.reshape(-1, 3).astype(np.int64)


def _node_position(index: np.ndarray, shape: tuple[int, ...], origin: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    i, j, k = np.unravel_index(index, shape)
    return origin + np.stack([i, j, k], axis=-1) * spacing
