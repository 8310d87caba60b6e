"""The floor: a RANSAC ground plane (:func:`fit_ground_plane`), the transform that levels it
(:func:`leveling_transform`), and the floor fill that closes its holes under the scene's footprint
(:func:`fill_under_ground`; see :mod:`lyra3d.simready.mesh`, steps 4–5)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lyra3d.errors import InputError
from lyra3d.simready.tsdf import TSDFVolume, grow_grid

#: The scene's up direction in its OpenCV world frame (docs/design.md §2: y points down).
SCENE_UP = (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class GroundPlane:
    """A plane ``normal · p + offset = 0``; ``normal`` is a unit vector pointing up (away from the floor),
    so ``normal · p + offset`` is the height of ``p`` above the floor."""

    normal: np.ndarray  # (3,) float64
    offset: float
    inlier_fraction: float = 0.0  # of the points it was fitted to
    rmse: float = 0.0  # of the inliers' distances

    def height(self, points: np.ndarray) -> np.ndarray:
        """Signed height of ``points (..., 3)`` above the plane."""
        return np.asarray(points, dtype=np.float64) @ self.normal + self.offset

    def to_dict(self) -> dict:
        return {"normal": [float(v) for v in self.normal], "offset": float(self.offset),
                "inlier_fraction": float(self.inlier_fraction), "rmse": float(self.rmse)}


# -- 4. ground plane -------------------------------------------------------------------------------------------------
def fit_ground_plane(points: np.ndarray, up=SCENE_UP, threshold: float = 0.05, max_tilt_degrees: float = 40.0,
                     iterations: int = 512, seed: int = 0, min_inliers: float = 0.02,
                     level_candidates: int = 128) -> GroundPlane | None:
    """RANSAC for the floor: the plane with most points within ``threshold`` whose normal is within
    ``max_tilt_degrees`` of ``up`` and that has no more points under it (farther than ``2 * threshold``) than
    on it, refined by least squares on its inliers. The last condition keeps a large slanted surface above
    the floor (a generated wall or ramp) from being taken for it: the floor is the bottom of the scene.

    Besides the planes through ``iterations`` random point triples, ``level_candidates`` planes normal to
    ``up`` through random points compete: where the floor is a small share of the scene (a room seen
    mostly as walls), few triples fall on it, and those that do, on a rough generated floor, give a tilted
    normal, while a camera is usually held level.

    Args:
        points: ``(N, 3)`` samples of the scene's surface (spread by area, not by vertex density).
        up: the expected up direction; the returned normal points along it.
        min_inliers: fraction of the points the best plane must hold, else ``None`` (no floor found).

    Returns:
        :class:`GroundPlane` or ``None``.
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise InputError(f"points must be (N, 3), got {p.shape}")
    if len(p) < 3:
        return None
    up = np.asarray(up, np.float64)
    up = up / np.linalg.norm(up)
    rng = np.random.default_rng(seed)
    cos_max = math.cos(math.radians(max_tilt_degrees))
    tri = p[rng.integers(0, len(p), size=(iterations, 3))]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    n = n / np.maximum(norm, 1e-12)[:, None]
    n *= np.where(n @ up < 0, -1.0, 1.0)[:, None]
    ok = (norm > 1e-12) & (n @ up >= cos_max)
    if not ok.any() and level_candidates <= 0:
        return None
    n, tri = n[ok], tri[ok]
    off = -np.einsum("ij,ij->i", n, tri[:, 0])
    if level_candidates > 0:
        through = p[rng.integers(0, len(p), size=level_candidates)]
        n = np.concatenate([n, np.broadcast_to(up, through.shape)])
        off = np.concatenate([off, -(through @ up)])
    best, best_count = -1, -1
    for start in range(0, len(n), 64):  # (64, N) height blocks
        height = p @ n[start:start + 64].T + off[start:start + 64]
        counts = (np.abs(height) < threshold).sum(0)
        counts[(height < -2 * threshold).sum(0) > counts] = -1  # more of the scene under it than on it
        j = int(np.argmax(counts))
        if counts[j] > best_count:
            best, best_count = start + j, int(counts[j])
    if best_count < 0:
        return None
    normal, offset = n[best], off[best]
    for _ in range(3):  # least-squares refinement on the inliers
        inl = np.abs(p @ normal + offset) < threshold
        if inl.sum() < 3:
            break
        q = p[inl]
        c = q.mean(0)
        _, _, vt = np.linalg.svd(q - c, full_matrices=False)
        cand = vt[2] * (1.0 if vt[2] @ up >= 0 else -1.0)
        if cand @ up < cos_max:
            break
        normal, offset = cand, -float(cand @ c)
    dist = np.abs(p @ normal + offset)
    inl = dist < threshold
    if inl.mean() < min_inliers:
        return None
    return GroundPlane(normal=normal, offset=float(offset), inlier_fraction=float(inl.mean()),
                       rmse=float(np.sqrt(np.mean(dist[inl] ** 2))))


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation ``(3, 3)`` taking unit vector ``a`` to unit vector ``b``."""
    a = np.asarray(a, np.float64) / np.linalg.norm(a)
    b = np.asarray(b, np.float64) / np.linalg.norm(b)
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-12:  # opposite: half a turn about any axis orthogonal to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 0.0, 1.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    vx = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + vx + vx @ vx / (1 + c)


def leveling_transform(ground: GroundPlane | None, up=SCENE_UP) -> np.ndarray:
    """A rigid ``(4, 4)`` transform of the scene frame that makes the floor the plane through the origin
    with normal ``up`` (tilt removed by the smallest rotation, floor height moved to 0); the identity when
    ``ground`` is ``None``."""
    m = np.eye(4)
    if ground is None:
        return m
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    r = rotation_between(ground.normal, up)
    m[:3, :3] = r
    # A point p on the floor has normal·p = -offset; after the rotation up·(r p) = -offset: shift it to 0.
    m[:3, 3] = ground.offset * up
    return m


# -- 5. floor fill --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Footprint:
    """A convex region of a ground plane: the points whose projection onto the plane has coordinates
    ``uv = p @ axes.T`` (``axes (2, 3)`` orthonormal, orthogonal to the plane's normal) with
    ``edges[:, :2] @ uv + edges[:, 2] <= 0`` for every edge of the polygon."""

    ground: GroundPlane
    axes: np.ndarray
    edges: np.ndarray
    corners: np.ndarray  # (K, 2): the polygon's vertices in ``uv``

    def corner_points(self) -> np.ndarray:
        """The polygon's vertices ``(K, 3)`` on the plane."""
        return self.corners @ self.axes - self.ground.offset * self.ground.normal

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Whether each point of ``points (P, 3)`` lies over (or under) the region."""
        uv = np.asarray(points, np.float64) @ self.axes.T
        return (uv @ self.edges[:, :2].T + self.edges[:, 2] <= 1e-9).all(1)


def plane_axes(normal: np.ndarray) -> np.ndarray:
    """Two orthonormal vectors ``(2, 3)`` spanning the plane orthogonal to ``normal``."""
    n = np.asarray(normal, np.float64) / np.linalg.norm(normal)
    helper = np.array([1.0, 0.0, 0.0]) if abs(n[0]) < 0.9 else np.array([0.0, 0.0, 1.0])
    a = np.cross(n, helper)
    a /= np.linalg.norm(a)
    return np.stack([a, np.cross(n, a)])


def floor_footprint(points: np.ndarray, ground: GroundPlane) -> Footprint | None:
    """The scene's footprint on its floor: the convex hull of ``points`` projected onto the plane, ``None``
    when they span no area. :func:`extract_mesh` takes the extracted surface and the cameras' centres (the
    viewer stands on the floor too), so floor hidden behind objects, missing, or between the cameras and the
    first floor they see lies inside it."""
    from scipy.spatial import ConvexHull, QhullError

    axes = plane_axes(ground.normal)
    uv = np.asarray(points, np.float64) @ axes.T
    try:
        hull = ConvexHull(uv)
    except (QhullError, ValueError):  # fewer than three points, or all on a line
        return None
    return Footprint(ground=ground, axes=axes, edges=hull.equations, corners=uv[hull.vertices])


def plane_slab(volume: TSDFVolume, footprint: Footprint, below: float, above: float) -> np.ndarray:
    """``(M, 3)`` grid indices of the voxels from ``below`` under the footprint's plane to ``above`` over it,
    over its region.

    The grid is walked in columns along the axis nearest the plane's normal; each column crosses the plane
    once, and its voxels near that crossing are kept where the crossing lies in the footprint."""
    n, off = footprint.ground.normal, footprint.ground.offset
    d = int(np.argmax(np.abs(n)))
    a, b = (k for k in range(3) if k != d)
    shape, vs, o = volume.shape, volume.voxel_size, volume.origin
    ia, ib = (g.reshape(-1) for g in np.meshgrid(np.arange(shape[a]), np.arange(shape[b]), indexing="ij"))
    # height along a column: h(t) = n·(o + vs·idx) + off, linear in t = idx[d]; it crosses 0 at t0
    base = n[a] * (o[a] + vs * ia) + n[b] * (o[b] + vs * ib) + n[d] * o[d] + off
    t0 = -base / (vs * n[d])
    crossing = np.zeros((len(ia), 3))
    crossing[:, a], crossing[:, b], crossing[:, d] = o[a] + vs * ia, o[b] + vs * ib, o[d] + vs * t0
    keep = footprint.contains(crossing)
    ia, ib, base, t0 = ia[keep], ib[keep], base[keep], t0[keep]
    reach = max(below, above) / (vs * abs(n[d]))
    t = np.ceil(t0 - reach)[:, None].astype(np.int64) + np.arange(int(math.floor(2 * reach)) + 2)[None, :]
    h = base[:, None] + n[d] * vs * t
    ok = (h >= -below) & (h <= above) & (t >= 0) & (t < shape[d])
    idx = np.empty(ok.shape + (3,), np.int64)
    idx[..., a], idx[..., b], idx[..., d] = ia[:, None], ib[:, None], t
    return idx[ok]


def fill_under_ground(volume: TSDFVolume, footprint: Footprint, max_voxels: int | None = None) -> TSDFVolume:
    """The TSDF of the union of the fused solid and the half-space under the ground plane, over the footprint.

    Over the footprint every observed voxel's value becomes ``min(tsdf, clamp(h / trunc, -1, 1))`` with ``h``
    its height above the plane (the union of two solids is the minimum of their signed distances), so a floor
    surface that dips below the plane, a hole in it and floaters under it give way to the plane, while
    everything above the plane (``h >= trunc``) is left as fused. The voxels of :func:`plane_slab` (from
    ``2 sqrt(3)`` voxels under the plane to ``sqrt(3)`` over it) are added to the band where missing and count
    as observed (weight at least ``1e-3``), so that marching cubes closes the holes there; one never observed
    takes the value of the plane (free space above it). Where that free space meets the fused inside of an
    object whose back was not seen (or the rim fusion leaves at the floor's edge), a small face stays at the
    slab's top, ``sqrt(3)`` voxels over the floor. Colours are not changed
    (:meth:`TSDFVolume.sample_color` falls back to the observed voxels, grey where none is near).

    With ``max_voxels`` the grid first grows to the footprint's box (:func:`grow_grid`, up to that many
    samples): the fused surface ends where the cameras first saw the floor, a few metres in front of them,
    and an object rolling towards them would fall off that edge.
    """
    if max_voxels is not None:
        corners = footprint.corner_points()
        pad = 3 * volume.voxel_size
        volume = grow_grid(volume, corners.min(0) - pad, corners.max(0) + pad, max_voxels)
    shape, trunc = volume.shape, volume.truncation
    band = np.ravel_multi_index(tuple(volume.index.T), shape)
    # the cubes that straddle the plane have their corners within sqrt(3) voxels of it; scikit-image's masked
    # marching cubes leaves cracks unless the slab reaches twice that deep (measured; sqrt(3) above suffices)
    corner = math.sqrt(3) * volume.voxel_size
    slab = np.ravel_multi_index(tuple(plane_slab(volume, footprint, 2 * corner, corner).T), shape)
    size = int(np.prod(shape, dtype=np.int64))
    in_band, slab_mark = np.zeros(size, bool), np.zeros(size, bool)
    in_band[band] = True
    slab_mark[slab] = True
    added = slab[~in_band[slab]]
    m = len(added)
    index = np.concatenate([volume.index, np.stack(np.unravel_index(added, shape), 1)])
    tsdf = np.concatenate([volume.tsdf, np.ones(m, np.float32)])
    weight = np.concatenate([volume.weight, np.zeros(m, np.float32)])
    in_slab = np.concatenate([slab_mark[band], np.ones(m, bool)])
    tsdf[in_slab & (weight == 0)] = 1.0  # never observed: free space until the plane says otherwise
    weight[in_slab] = np.maximum(weight[in_slab], 1e-3)
    floor = np.clip(footprint.ground.height(volume.origin + index * volume.voxel_size) / trunc, -1.0, 1.0)
    # where the plane's solid adds to the observed one over the footprint (the slab was cut to the footprint;
    # the observed voxels farther below the plane are tested one by one)
    lower = (floor < tsdf) & (weight > 0)
    deep = np.flatnonzero(lower & ~in_slab)
    lower = np.concatenate([np.flatnonzero(lower & in_slab),
                            deep[footprint.contains(volume.origin + index[deep] * volume.voxel_size)]])
    tsdf[lower] = floor[lower]
    return TSDFVolume(origin=volume.origin, voxel_size=volume.voxel_size, shape=shape, index=index, tsdf=tsdf,
                      weight=weight, color=np.concatenate([volume.color, np.zeros((m, 3), np.float32)]),
                      color_weight=np.concatenate([volume.color_weight, np.zeros(m, np.float32)]),
                      truncation=volume.truncation)
