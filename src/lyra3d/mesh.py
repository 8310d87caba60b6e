"""Surface extraction: a coloured triangle mesh from 3D Gaussians, for collision and for other tools.

:func:`extract_mesh` turns a scene (Gaussians + the cameras that generated it) into a mesh in six steps:

1. **Depth renders** (:func:`render_depths`). The Gaussians are rasterized (:func:`lyra3d.render.rasterize`,
   the C kernel on CPU) at up to ``max_views`` of the trajectory cameras. Depth comes from the first two
   moments of *inverse* depth rendered as colour channels, not from the expected depth, which a surface of
   opacity 0.99 in front of a far background (a sky at 500 m) pulls metres backwards. A pixel counts as
   surface where its opacity is at least ``min_alpha``, its depth is at most ``max_depth`` (sky and far
   splats are dropped), its inverse depth spreads little along the ray (no see-through or mixed pixels) and it
   is not at an occlusion edge (:func:`lyra3d.cache3d.depth_edges`).
2. **TSDF fusion** (:func:`fuse_tsdf`): truncated-signed-distance fusion (Curless & Levoy) on a voxel grid,
   written here in numpy: every view updates each voxel in front of (or up to ``trunc`` behind) its observed
   depth with ``clamp(distance / trunc, -1, 1)`` as a weighted running mean, and the colour of voxels near the
   surface. The distance is to the observed surface's tangent plane (depth difference times the cosine of the
   incidence angle, normals from the depth map), not along the ray: at grazing angles (a floor far from the
   camera) a projective distance changes sign within a sliver thinner than a voxel and the floor falls
   apart into holes. Only the narrow band of voxels within the truncation distance of an observed point is
   stored and updated, which costs a fraction of a dense grid and loses nothing: zero crossings exist only
   there.
3. **Marching cubes** (scikit-image's Lewiner implementation) on the zero level, restricted to cubes whose
   eight corners were observed, so unobserved space never produces a surface; small disconnected pieces
   (floaters) are dropped.
4. **Ground plane** by RANSAC (:func:`fit_ground_plane`): the largest plane within ``ground_max_tilt_degrees``
   of the scene's up direction (``-y``, DESIGN §2) that has no more of the surface under it than on it (the
   floor is the scene's bottom), refined by least squares. :func:`leveling_transform` maps it to ``y = 0``
   (the exporter turns that into a Z-up floor at ``Z = 0``).
5. **Floor fill** (``fill_floor``, on by default; :func:`fill_under_ground`): a generated floor has holes
   (gaps between the decoder's Gaussians, floor never seen behind objects) and dips below its plane
   (floaters), through which dropped objects fall. Over the scene's footprint on the plane
   (:func:`floor_footprint`: the convex hull of the surface and the cameras, projected onto it), the TSDF
   becomes the union of the fused solid and the half-space under the plane, ``min(tsdf, height / trunc)``,
   and marching cubes runs again: the floor is closed at the plane's height, everything higher than the
   truncation distance above it is left as fused. The grid first grows to the whole footprint
   (:func:`grow_grid`), so the floor reaches under the cameras, where none of them looked.
6. **Decimation** to ``target_faces`` by quadric edge collapse (fast-simplification); then the vertices within
   the RANSAC threshold of the floor are snapped onto it (a flat floor) and vertex colours are sampled
   trilinearly from the fused colour volume.

Why TSDF fusion + marching cubes, written here, rather than Open3D: Open3D's ``ScalableTSDFVolume`` does
steps 2–3, but its wheel is about 400 MB with a GUI stack, its projective distance has the grazing-angle holes
above, and it would still need the robust depth of step 1; the fusion here is about sixty lines of numpy.
scikit-image (marching cubes) and fast-simplification (a C++ quadric decimator, 0.3 MB) are small, well kept
and have wheels for every platform.

Units are scene units (metres by DESIGN §2's convention); the mesh lives in the scene's OpenCV world frame.

The second half of the module evaluates meshes on procedural worlds, whose geometry is exact:
:func:`world_surface_distance` (analytic unsigned distance to a world's surfaces),
:func:`world_surface_samples` (ray-cast surface points seen by cameras), :func:`point_mesh_distance`,
:func:`evaluate_mesh` (Chamfer distance, floor height and tilt errors) and :func:`write_world_scene`, which
turns a world into the stand-in for a generated scene folder (``scene.ply`` + ``cameras.json``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lyra3d.cameras import Cameras, default_camera, lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.gaussians import Gaussians

__all__ = [
    "ExtractionConfig", "GroundPlane", "MeshResult", "MeshEvaluation", "extract_mesh", "render_depths",
    "fuse_tsdf", "TSDFVolume", "fit_ground_plane", "leveling_transform", "Footprint", "floor_footprint",
    "plane_slab", "grow_grid", "fill_under_ground", "decimate", "sample_surface",
    "point_mesh_distance", "chamfer_distance", "world_surface_distance", "world_surface_samples",
    "evaluate_mesh", "world_cameras", "gaussians_from_world", "write_world_scene", "SIM_INSTALL",
]

#: What to install for the optional dependencies of this module and :mod:`lyra3d.simready`.
SIM_INSTALL = "pip install lyra3d[sim]"
#: The scene's up direction in its OpenCV world frame (DESIGN §2: y points down).
SCENE_UP = (0.0, -1.0, 0.0)


# -- configuration and results ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractionConfig:
    """Parameters of :func:`extract_mesh` (scene units are metres when the depth is metric).

    Attributes:
        max_views: cameras fused at most, spread evenly over the camera list (all trajectories).
        render_width: width of the depth renders in pixels (height keeps the aspect); ``0`` renders at the
            cameras' own size. Small cameras are rendered larger: finer depth samples fuse into a better surface.
        min_alpha: accumulated opacity from which a pixel counts as surface.
        edge_tolerance: :func:`~lyra3d.cache3d.depth_edges` tolerance; pixels at occlusion edges are dropped.
            ``0`` keeps them.
        max_depth_spread: pixels whose inverse depth spreads more than this (relative standard deviation
            along the pixel's ray, see :func:`render_depths`) are dropped: mixed or see-through pixels.
        max_depth: depths beyond this are not fused; ``None`` takes ``depth_factor`` times the median depth.
        depth_factor: see ``max_depth``.
        voxel_size: TSDF voxel edge; ``None`` picks the larger of the size that fits the fused region into
            ``max_voxels`` and one pixel's footprint at the median depth.
        max_voxels: budget of the (dense) voxel grid when ``voxel_size`` is ``None``.
        truncation_voxels: TSDF truncation distance, in voxels.
        min_incidence: the fused distance is the distance to the observed surface's tangent plane (a z-depth
            difference times ``|cos|`` of the angle between ray and surface normal), with that cosine
            clamped from below here; ``1`` fuses plain projective distances (see :func:`_incidence`).
        min_component_fraction: connected pieces with fewer faces than this fraction of the mesh are dropped.
        target_faces: decimate to at most this many triangles (0: no decimation).
        ground: detect the ground plane (RANSAC) and flatten the floor onto it.
        ground_max_tilt_degrees: the floor's normal is at most this far from the scene's up (``-y``).
        ground_threshold: RANSAC inlier distance; ``None``: 1.5 voxels.
        ransac_iterations: plane hypotheses drawn.
        fill_floor: when a ground plane is found, make the space under it solid within the scene's footprint
            before the final marching cubes (:func:`fill_under_ground`): holes and dips in the floor are
            closed at the plane's height, geometry above it is kept.
        backend: rasterizer backend for the depth renders (see :func:`lyra3d.render.rasterize`).
        seed: seeds the RANSAC and the surface samples (the result is deterministic).
    """

    max_views: int = 32
    render_width: int = 320
    min_alpha: float = 0.5
    edge_tolerance: float = 0.05
    max_depth_spread: float = 0.1
    max_depth: float | None = None
    depth_factor: float = 2.5
    voxel_size: float | None = None
    max_voxels: int = 1 << 24
    truncation_voxels: float = 3.0
    min_incidence: float = 0.2
    min_component_fraction: float = 0.002
    target_faces: int = 50_000
    ground: bool = True
    ground_max_tilt_degrees: float = 40.0
    ground_threshold: float | None = None
    ransac_iterations: int = 512
    fill_floor: bool = True
    backend: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        def positive(name: str, value, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise InputError(f"ExtractionConfig.{name} must be a positive number, got {value!r}")

        positive("max_views", self.max_views)
        positive("max_voxels", self.max_voxels)
        positive("truncation_voxels", self.truncation_voxels)
        positive("depth_factor", self.depth_factor)
        positive("max_depth_spread", self.max_depth_spread)
        if not 0.0 < self.min_incidence <= 1.0:
            raise InputError(f"ExtractionConfig.min_incidence must be in (0, 1], got {self.min_incidence!r}")
        positive("ransac_iterations", self.ransac_iterations)
        positive("max_depth", self.max_depth, allow_none=True)
        positive("voxel_size", self.voxel_size, allow_none=True)
        positive("ground_threshold", self.ground_threshold, allow_none=True)
        if not 0.0 < self.min_alpha <= 1.0:
            raise InputError(f"ExtractionConfig.min_alpha must be in (0, 1], got {self.min_alpha!r}")
        if self.render_width < 0 or self.target_faces < 0 or self.edge_tolerance < 0:
            raise InputError("ExtractionConfig.render_width, target_faces and edge_tolerance must be >= 0")
        if self.target_faces and self.target_faces < 16:
            raise InputError(f"ExtractionConfig.target_faces must be 0 (no decimation) or >= 16, "
                             f"got {self.target_faces}")
        if not 0.0 <= self.min_component_fraction < 1.0:
            raise InputError("ExtractionConfig.min_component_fraction must be in [0, 1)")
        if not 0.0 < self.ground_max_tilt_degrees < 90.0:
            raise InputError("ExtractionConfig.ground_max_tilt_degrees must be in (0, 90)")


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


@dataclass
class MeshResult:
    """An extracted mesh, in the scene's frame and units.

    Attributes:
        vertices: ``(V, 3)`` float32.
        faces: ``(F, 3)`` int64 indices, counter-clockwise seen from outside (normals face the cameras).
        colors: ``(V, 3)`` float32 rgb in [0, 1].
        ground: the fitted floor (``None`` when disabled or not found).
        voxel_size, max_depth: what the fusion used.
        seconds: time per stage (``render``, ``fuse``, ``surface``, ``ground``, ``floor``, ``decimate``,
            ``total``).
        stats: counts (views, voxels in the band, faces before decimation, ...; ``floor_filled`` 1 when
            :func:`fill_under_ground` ran).
    """

    vertices: np.ndarray
    faces: np.ndarray
    colors: np.ndarray
    ground: GroundPlane | None
    voxel_size: float
    max_depth: float
    seconds: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])


# -- 1. depth renders -----------------------------------------------------------------------------------------------
def select_views(num_cameras: int, max_views: int) -> np.ndarray:
    """Indices of at most ``max_views`` cameras spread evenly over ``0 .. num_cameras - 1`` (ends included)."""
    if num_cameras <= max_views:
        return np.arange(num_cameras)
    return np.unique(np.round(np.linspace(0, num_cameras - 1, max_views)).astype(np.int64))


def render_depths(gaussians: Gaussians, cameras: Cameras, config: ExtractionConfig = ExtractionConfig(),
                  chunk: int = 8) -> tuple[Tensor, Tensor, Tensor, float]:
    """Render depth and colour of ``gaussians`` at ``cameras`` and mark the pixels that are surface.

    Depth is not the rasterizer's expected depth ``Σ w z / Σ w``: behind a surface of opacity 0.99, the
    last 1 % of a pixel's weight lands on whatever lies behind it (a sky at 500 m moves a wall at 10 m to
    15 m). Instead each view renders the first two moments of *inverse* depth as colour channels
    (``c = (z0 / z, (z0 / z)², 0)`` per Gaussian, ``z0`` a reference depth): a far leak then moves inverse
    depth by at most its weight, and the spread ``sqrt(E[x²] - E[x]²) / E[x]`` (about the square root of the
    leaked weight, or large where a pixel straddles two surfaces) drops pixels above ``max_depth_spread``.

    Returns:
        ``depth (B, 1, H, W)`` z-depth, ``rgb (B, 3, H, W)``, ``valid (B, 1, H, W)`` bool, and the
        ``max_depth`` used.
    """
    from lyra3d.cache3d import depth_edges
    from lyra3d.gaussians import SH_C0
    from lyra3d.render import rasterize

    if config.render_width and config.render_width != cameras.width:
        w = int(config.render_width)
        h = max(8, int(round(cameras.height * w / cameras.width)))
        cameras = cameras.resized(w, h)
    g = gaussians.detach().to(dtype=torch.float32)
    cams = cameras.to(g.device, torch.float32)
    rgb, alpha, moments = [], [], []
    for i in range(0, len(cams), chunk):
        out = rasterize(g, cams[i:i + chunk], backend=config.backend)
        rgb.append(out.rgb.cpu())
        alpha.append(out.alpha.cpu())
    w2c = cams.world_to_camera
    z_first = g.means @ w2c[0, 2, :3] + w2c[0, 2, 3]
    z0 = float(z_first[z_first > 1e-3].median()) if bool((z_first > 1e-3).any()) else 1.0  # keeps x near 1
    for i in range(len(cams)):
        x = z0 / (g.means @ w2c[i, 2, :3] + w2c[i, 2, 3]).clamp_min(1e-3)  # camera z of every Gaussian
        c = torch.stack([x, x * x, torch.zeros_like(x)], dim=-1)
        sh = ((c - 0.5) / SH_C0)[:, None, :]
        probe = Gaussians(g.means, g.scales, g.quats, g.opacities, sh)
        moments.append(rasterize(probe, cams[i:i + 1], backend=config.backend, sh_degree=0).rgb.cpu())
    rgb, alpha, moments = torch.cat(rgb), torch.cat(alpha), torch.cat(moments)
    a = alpha.clamp_min(1e-6)
    m1, m2 = moments[:, :1] / a, moments[:, 1:2] / a
    depth = z0 / m1.clamp_min(1e-9)
    spread = (m2 - m1 * m1).clamp_min(0).sqrt() / m1.clamp_min(1e-9)
    valid = (alpha >= config.min_alpha) & (m1 > 0) & torch.isfinite(depth)
    if not bool(valid.any()):
        raise InputError("the Gaussians cover no pixel of the cameras (nothing opaque in view): "
                         "check that cameras.json belongs to scene.ply")
    max_depth = config.max_depth
    if max_depth is None:
        max_depth = config.depth_factor * float(depth[valid].median())
    valid &= (depth <= max_depth) & (spread <= config.max_depth_spread)
    depth = torch.where(valid, depth, torch.zeros_like(depth))
    if config.edge_tolerance > 0:
        for b in range(len(depth)):
            valid[b] &= depth_edges(depth[b], config.edge_tolerance) == 0
    if not bool(valid.any()):
        raise InputError(f"no surface pixel is nearer than max_depth={max_depth:.3g}; raise it")
    return torch.where(valid, depth, torch.zeros_like(depth)), rgb.clamp(0, 1), valid, float(max_depth)


# -- 2. TSDF fusion --------------------------------------------------------------------------------------------------
@dataclass
class TSDFVolume:
    """A fused narrow-band TSDF on a regular grid.

    Grid sample ``(i, j, k)`` sits at ``origin + voxel_size * (i, j, k)``; ``shape`` is the dense grid size.
    Only the band voxels ``index (M, 3)`` carry data: ``tsdf (M,)`` in [-1, 1] (positive in front of the
    surface), ``weight (M,)`` the summed observation weights (0: never observed), ``color (M, 3)`` and
    ``color_weight (M,)`` (observations within the truncation distance).
    """

    origin: np.ndarray
    voxel_size: float
    shape: tuple[int, int, int]
    index: np.ndarray
    tsdf: np.ndarray
    weight: np.ndarray
    color: np.ndarray
    color_weight: np.ndarray
    truncation: float

    def dense(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense ``tsdf`` (1 where unobserved) and ``weight`` arrays of :attr:`shape`."""
        tsdf = np.ones(self.shape, np.float32)
        weight = np.zeros(self.shape, np.float32)
        i, j, k = self.index.T
        tsdf[i, j, k] = self.tsdf
        weight[i, j, k] = self.weight
        return tsdf, weight

    def sample_color(self, points: np.ndarray) -> np.ndarray:
        """Trilinear colour at ``points (P, 3)`` from the observed band voxels around them (grey if none)."""
        lookup = np.full(self.shape, -1, np.int32)
        lookup[tuple(self.index.T)] = np.arange(len(self.index))
        g = (np.asarray(points, np.float64) - self.origin) / self.voxel_size
        base = np.floor(g).astype(np.int64)
        frac = g - base
        acc = np.zeros((len(g), 3))
        wsum = np.zeros(len(g))
        hi = np.array(self.shape) - 1
        for corner in range(8):
            off = np.array([(corner >> 2) & 1, (corner >> 1) & 1, corner & 1])
            c = np.clip(base + off, 0, hi)
            w = np.prod(np.where(off == 1, frac, 1 - frac), axis=1)
            idx = lookup[c[:, 0], c[:, 1], c[:, 2]]
            ok = idx >= 0
            w = np.where(ok, w * (self.color_weight[np.maximum(idx, 0)] > 0), 0.0)
            acc += w[:, None] * self.color[np.maximum(idx, 0)]
            wsum += w
        out = np.full((len(g), 3), 0.5)
        has = wsum > 1e-8
        out[has] = acc[has] / wsum[has, None]
        return np.clip(out, 0, 1).astype(np.float32)


def _band(points: np.ndarray, origin: np.ndarray, voxel: float, shape: tuple[int, int, int],
          radius: int) -> np.ndarray:
    """``(M, 3)`` grid indices within ``radius`` voxels (Chebyshev) of any point."""
    from scipy import ndimage

    idx = np.floor((points - origin) / voxel + 0.5).astype(np.int64)
    idx = np.clip(idx, 0, np.array(shape) - 1)
    occ = np.zeros(shape, bool)
    occ[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    band = ndimage.maximum_filter(occ.view(np.uint8), size=2 * radius + 1, mode="constant")  # separable
    return np.argwhere(band)


def _incidence(points: Tensor, depth: Tensor, cams: Cameras,
               min_incidence: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel ``(B, H·W)``: the factor from a z-depth difference to the distance from the surface's tangent
    plane, ``max(|n·d|, min_incidence) / (d·forward)``, and an observation weight ``max(|n·d|, 0.1)`` (grazing
    views count less).

    ``n`` is the normal of the depth map's surface (central differences of its back-projected points), ``d``
    the unit ray. Where the normal is unknown (a neighbour missing or across a depth jump) the factor is 1
    (plain projective distance) and the weight 0.5. Without this a floor seen at a grazing angle changes
    sign within a sliver thinner than a voxel: most voxel columns then miss the zero crossing and the floor
    gets holes far from the camera.
    """
    b, h, w, _ = points.shape
    ok = depth > 0
    n = torch.zeros_like(points)
    known = torch.zeros(b, h, w, dtype=torch.bool)
    dx = points[:, 1:-1, 2:] - points[:, 1:-1, :-2]
    dy = points[:, 2:, 1:-1] - points[:, :-2, 1:-1]
    zc = depth[:, 1:-1, 1:-1]
    smooth = ((depth[:, 1:-1, 2:] - depth[:, 1:-1, :-2]).abs() < 0.15 * zc) & \
        ((depth[:, 2:, 1:-1] - depth[:, :-2, 1:-1]).abs() < 0.15 * zc)
    known[:, 1:-1, 1:-1] = ok[:, 1:-1, 1:-1] & ok[:, 1:-1, 2:] & ok[:, 1:-1, :-2] & ok[:, 2:, 1:-1] & \
        ok[:, :-2, 1:-1] & smooth
    n[:, 1:-1, 1:-1] = torch.nn.functional.normalize(torch.linalg.cross(dx, dy), dim=-1)
    centres = cams.centers[:, None, None, :]
    ray = torch.nn.functional.normalize(points - centres, dim=-1)
    fwd = cams.camera_to_world[:, :3, 2][:, None, None, :]
    cos_n = (n * ray).sum(-1).abs()
    cos_a = (ray * fwd).sum(-1).clamp_min(1e-3)
    known &= cos_n > 1e-3
    factor = torch.where(known, cos_n.clamp_min(min_incidence) / cos_a, torch.ones_like(cos_n))
    weight = torch.where(known, cos_n.clamp_min(0.1), torch.full_like(cos_n, 0.5))
    return factor.reshape(b, -1).numpy(), weight.reshape(b, -1).numpy()


def fuse_tsdf(depth: Tensor, rgb: Tensor, valid: Tensor, cameras: Cameras,
              config: ExtractionConfig = ExtractionConfig()) -> TSDFVolume:
    """Fuse depth maps ``(B, 1, H, W)`` (with colours and validity) seen by ``cameras`` into a TSDF.

    ``cameras`` are those of the renders (their size must match the maps). See the module notes.
    """
    from lyra3d.cache3d import unproject

    b, _, h, w = depth.shape
    if len(cameras) != b:
        raise InputError(f"{len(cameras)} cameras for {b} depth maps")
    if (cameras.width, cameras.height) != (w, h):
        cameras = cameras.resized(w, h)
    cams = cameras.to("cpu", torch.float32)
    d = torch.where(valid, depth, torch.zeros_like(depth)).float()
    cache = unproject(rgb.float(), d, cams)
    pts = cache.points[cache.valid].double().numpy()
    lo, hi = pts.min(0), pts.max(0)
    extent = np.maximum(hi - lo, 1e-6)
    median = float(depth[valid].median())
    if config.voxel_size is not None:
        voxel = float(config.voxel_size)
    else:
        footprint = median / float(cams.intrinsics[:, :2].max())
        voxel = max(float(np.prod(extent + 0.0) / config.max_voxels) ** (1 / 3), footprint)
    trunc = config.truncation_voxels * voxel
    margin = trunc + 2 * voxel
    origin = lo - margin
    shape = tuple(int(v) for v in np.ceil((hi - lo + 2 * margin) / voxel).astype(np.int64) + 1)
    if int(np.prod(shape, dtype=np.int64)) > 4 * config.max_voxels:
        raise InputError(f"voxel_size {voxel:.3g} gives a {shape[0]}x{shape[1]}x{shape[2]} grid, over 4x "
                         f"max_voxels ({config.max_voxels}); use a larger voxel_size or a smaller max_depth")
    index = _band(pts, origin, voxel, shape, int(math.ceil(config.truncation_voxels)) + 1)
    centres = (origin + index * voxel).astype(np.float32)  # (M, 3)
    cx_, cy_, cz_ = (np.ascontiguousarray(centres[:, j]) for j in range(3))
    m = len(centres)
    tsdf = np.zeros(m, np.float32)
    weight = np.zeros(m, np.float32)
    color = np.zeros((m, 3), np.float32)
    cweight = np.zeros(m, np.float32)
    w2c = cams.world_to_camera.numpy()
    k = cams.intrinsics.numpy()
    flat_depth = d.reshape(b, -1).numpy()
    flat_rgb = rgb.float().permute(0, 2, 3, 1).reshape(b, -1, 3).numpy()
    to_perp, obs_weight = _incidence(cache.points.reshape(b, h, w, 3), d[:, 0], cams, config.min_incidence)
    # Single-threaded numpy over every band voxel with masks: on a small shared CPU this is several times
    # faster than torch's multi-threaded elementwise ops or boolean selections of millions of entries.
    for i in range(b):
        r, t = w2c[i, :3, :3], w2c[i, :3, 3]
        z = cx_ * r[2, 0] + cy_ * r[2, 1] + cz_ * r[2, 2] + t[2]
        zs = np.maximum(z, 1e-3)
        u = np.floor((cx_ * r[0, 0] + cy_ * r[0, 1] + cz_ * r[0, 2] + t[0]) / zs * k[i, 0] + k[i, 2])
        v = np.floor((cx_ * r[1, 0] + cy_ * r[1, 1] + cz_ * r[1, 2] + t[1]) / zs * k[i, 1] + k[i, 3])
        inside = (z > 1e-3) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        pix = np.where(inside, v * w + u, 0).astype(np.int64)
        obs = flat_depth[i][pix]
        sdf = (obs - z) * to_perp[i][pix]  # distance to the surface's tangent plane, not along the ray
        upd = inside & (obs > 0) & (sdf > -trunc)
        wt = np.where(upd, obs_weight[i][pix], 0.0).astype(np.float32)
        weight += wt
        value = np.minimum(sdf / trunc, 1.0)
        tsdf += np.where(upd, (value - tsdf) * wt / np.maximum(weight, 1e-6), 0.0).astype(np.float32)
        near = upd & (np.abs(sdf) < trunc)
        cweight += near
        step = np.where(near, 1.0 / np.maximum(cweight, 1.0), 0.0).astype(np.float32)
        color += (flat_rgb[i][pix] - color) * step[:, None]
    return TSDFVolume(origin=origin, voxel_size=voxel, shape=shape, index=index, tsdf=tsdf, weight=weight,
                      color=color, color_weight=cweight, truncation=trunc)


# -- 3. surface -----------------------------------------------------------------------------------------------------
def _marching_cubes(volume: TSDFVolume) -> tuple[np.ndarray, np.ndarray]:
    try:
        from skimage.measure import marching_cubes
    except ImportError:
        raise InputError(f"mesh extraction needs scikit-image: {SIM_INSTALL}") from None
    tsdf, weight = volume.dense()
    seen = weight > 0
    cube = np.zeros_like(seen)  # a cube is used only when all eight corners were observed
    c = seen[:-1, :-1, :-1].copy()
    for di, dj, dk in ((1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 1, 1)):
        c &= seen[di:di + seen.shape[0] - 1, dj:dj + seen.shape[1] - 1, dk:dk + seen.shape[2] - 1]
    cube[:-1, :-1, :-1] = c
    if not (tsdf[seen].min() < 0 < tsdf[seen].max()):
        raise InputError("the fused depth holds no surface (no zero crossing); are the cameras those of the scene?")
    verts, faces, _, _ = marching_cubes(tsdf, level=0.0, spacing=(volume.voxel_size,) * 3, mask=cube,
                                        allow_degenerate=False)
    # With gradient_direction="descent" scikit-image winds the triangles counter-clockwise seen from the
    # high side: the TSDF grows towards the cameras, so the normals face free space (outward).
    return (verts + volume.origin).astype(np.float64), np.ascontiguousarray(faces, dtype=np.int64)


def _surface(volume: TSDFVolume, min_component_fraction: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Marching cubes without the small pieces: ``(vertices, faces, faces before dropping pieces)``."""
    verts, faces = _marching_cubes(volume)
    kept = remove_small_components(verts, faces, int(min_component_fraction * len(faces)))
    return *kept, len(faces)


def remove_small_components(vertices: np.ndarray, faces: np.ndarray, min_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop connected pieces (sharing vertices) with fewer than ``min_faces`` faces, and unused vertices."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0 or min_faces <= 1:
        return compact(vertices, faces)
    n = len(vertices)
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    per = np.bincount(label[faces[:, 0]], minlength=label.max() + 1)
    keep = per[label[faces[:, 0]]] >= min_faces
    return compact(vertices, faces[keep])


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove unreferenced vertices and degenerate faces (repeated indices); renumber."""
    faces = np.asarray(faces, np.int64)
    ok = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    faces = faces[ok]
    used = np.unique(faces)
    remap = np.full(len(vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    return np.asarray(vertices)[used], remap[faces]


def decimate(vertices: np.ndarray, faces: np.ndarray, target_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge-collapse decimation (fast-simplification) to at most about ``target_faces`` triangles.

    The vertices are first moved by a deterministic random offset of 1e-4 of the median edge length: the
    decimator stalls in exactly flat regions (such as the floor that :func:`fill_under_ground` makes; see
    sp4cerat/Fast-Quadric-Mesh-Simplification issue 37), far short of the target and several times slower.
    """
    if target_faces <= 0 or len(faces) <= target_faces:
        return vertices, faces
    try:
        import fast_simplification
    except ImportError:
        raise InputError(f"mesh decimation needs fast-simplification: {SIM_INSTALL}") from None
    v, f = np.asarray(vertices, np.float64), np.asarray(faces, np.int64)
    edge = float(np.median(np.linalg.norm(v[f[:, 1]] - v[f[:, 0]], axis=1)))
    v = v + np.random.default_rng(0).normal(0.0, 1e-4 * edge, v.shape)
    for agg in (7.0, 9.0, 12.0):  # open, ragged meshes can stall short of the target: retry more aggressively
        before = len(f)
        v, f = fast_simplification.simplify(np.ascontiguousarray(v), np.ascontiguousarray(f),
                                            target_count=int(target_faces), agg=agg)
        v, f = compact(np.asarray(v, np.float64), np.asarray(f, np.int64))
        if len(f) <= target_faces or len(f) >= before:
            break
    return v, f


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = np.asarray(vertices, np.float64)[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)


def sample_surface(vertices: np.ndarray, faces: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points spread uniformly over the mesh's area: ``(points (n, 3), face index (n,))``."""
    if len(faces) == 0:
        raise InputError("the mesh has no faces")
    rng = np.random.default_rng(seed)
    area = face_areas(vertices, faces)
    if not area.sum() > 0:
        raise InputError("the mesh has zero area")
    fid = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    s = np.sqrt(r1)
    tri = np.asarray(vertices, np.float64)[faces[fid]]
    pts = (1 - s)[:, None] * tri[:, 0] + (s * (1 - r2))[:, None] * tri[:, 1] + (s * r2)[:, None] * tri[:, 2]
    return pts, fid


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


def grow_grid(volume: TSDFVolume, lo: np.ndarray, hi: np.ndarray, max_voxels: int) -> TSDFVolume:
    """The volume on a grid that also covers the box ``lo..hi`` (the same voxels, origin moved by whole
    voxels, band indices shifted), or ``volume`` itself when it covers it already or the grown grid would
    hold more than ``max_voxels`` samples."""
    vs = volume.voxel_size
    low = np.minimum(np.floor((np.asarray(lo) - volume.origin) / vs).astype(np.int64), 0)
    high = np.maximum(np.ceil((np.asarray(hi) - volume.origin) / vs).astype(np.int64) + 1, volume.shape)
    shape = tuple(int(n) for n in high - low)
    if shape == tuple(volume.shape) or int(np.prod(shape, dtype=np.int64)) > max_voxels:
        return volume
    return dataclasses.replace(volume, origin=volume.origin + low * vs, shape=shape, index=volume.index - low)


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


# -- the pipeline ----------------------------------------------------------------------------------------------------
def extract_mesh(gaussians: Gaussians, cameras: Cameras, config: ExtractionConfig = ExtractionConfig(),
                 progress=None) -> MeshResult:
    """Extract a coloured, decimated triangle mesh of the scene's surface (see the module notes).

    Args:
        gaussians: the scene.
        cameras: the cameras that generated it (all trajectories); up to ``config.max_views`` are used.
        config: :class:`ExtractionConfig`.
        progress: optional ``callable(stage: str)`` told when each stage starts.

    Returns:
        :class:`MeshResult` in the scene's frame (OpenCV axes) and units.
    """
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"gaussians must be lyra3d Gaussians, got {type(gaussians).__name__}")
    if not isinstance(cameras, Cameras) or len(cameras) == 0:
        raise InputError("cameras must be a non-empty lyra3d Cameras batch")
    if len(gaussians) == 0:
        raise InputError("the scene holds no Gaussians")
    gaussians = gaussians.validate()
    say = progress or (lambda stage: None)
    seconds: dict[str, float] = {}
    t0 = t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = now - t
        t = now

    views = select_views(len(cameras), config.max_views)
    cams = cameras[torch.from_numpy(views)]
    say("rendering depth")
    depth, rgb, valid, max_depth = render_depths(gaussians, cams, config)
    lap("render")
    say("fusing depth (TSDF)")
    volume = fuse_tsdf(depth, rgb, valid, cams, config)
    lap("fuse")
    say("marching cubes")
    verts, faces, raw_faces = _surface(volume, config.min_component_fraction)
    lap("surface")
    ground = None
    if config.ground:
        say("ground plane")
        thr = config.ground_threshold or 1.5 * volume.voxel_size
        samples, _ = sample_surface(verts, faces, min(50_000, 20 * len(faces)), seed=config.seed)
        ground = fit_ground_plane(samples, SCENE_UP, thr, config.ground_max_tilt_degrees,
                                  config.ransac_iterations, config.seed)
    lap("ground")
    footprint = None
    if ground is not None and config.fill_floor:
        footprint = floor_footprint(np.concatenate([verts, cams.centers.double().numpy()]), ground)
    if footprint is not None:
        say("filling the floor")
        volume = fill_under_ground(volume, footprint, 2 * config.max_voxels)
        verts, faces, raw_faces = _surface(volume, config.min_component_fraction)
    lap("floor")
    say("decimating")
    verts, faces = decimate(verts, faces, config.target_faces)
    if ground is not None:  # snap the floor's vertices onto the plane (after decimation, which moves them)
        h = ground.height(verts)
        on = np.abs(h) < thr
        verts[on] -= h[on, None] * ground.normal
    colors = volume.sample_color(verts)
    lap("decimate")
    seconds["total"] = time.perf_counter() - t0
    stats = {"views": len(views), "band_voxels": len(volume.index), "grid_voxels": int(np.prod(volume.shape)),
             "faces_before_decimation": int(raw_faces), "faces": int(len(faces)), "vertices": int(len(verts)),
             "surface_pixels": int(valid.sum()), "floor_filled": int(footprint is not None)}
    return MeshResult(vertices=verts.astype(np.float32), faces=faces.astype(np.int64), colors=colors,
                      ground=ground, voxel_size=volume.voxel_size, max_depth=max_depth, seconds=seconds,
                      stats=stats)


# -- distances -------------------------------------------------------------------------------------------------------
def _closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Closest points to ``p`` on triangles ``abc`` (all ``(..., 3)``), by the Voronoi regions of the
    triangle (vertex, edge or face; Ericson, Real-Time Collision Detection §5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    denom = va + vb + vc
    denom = np.where(np.abs(denom) < 1e-30, 1e-30, denom)
    v = vb / denom
    w = vc / denom
    out = a + ab * v[..., None] + ac * w[..., None]  # inside the face
    # edges (later assignments win, so order from the least to the most specific region)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
        on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
        out = np.where(on_bc[..., None], b + (c - b) * np.nan_to_num(t_bc)[..., None], out)
        t_ac = d2 / (d2 - d6)
        on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
        out = np.where(on_ac[..., None], a + ac * np.nan_to_num(t_ac)[..., None], out)
        t_ab = d1 / (d1 - d3)
        on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
        out = np.where(on_ab[..., None], a + ab * np.nan_to_num(t_ab)[..., None], out)
    out = np.where(((d6 >= 0) & (d5 <= d6))[..., None], c, out)
    out = np.where(((d3 >= 0) & (d4 <= d3))[..., None], b, out)
    out = np.where(((d1 <= 0) & (d2 <= 0))[..., None], a, out)
    return out


def point_mesh_distance(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, samples: int = 300_000,
                        candidates: int = 8, seed: int = 0, chunk: int = 65536) -> np.ndarray:
    """Unsigned distance from ``points (P, 3)`` to a triangle mesh.

    Candidate triangles are those of the ``candidates`` nearest of ``samples`` area-uniform surface samples;
    the exact point-triangle distance to each is taken and the minimum kept (exact unless the nearest
    triangle has no sample among them, then an upper bound within the sample spacing).
    """
    from scipy.spatial import cKDTree

    pts, fid = sample_surface(vertices, faces, samples, seed)
    tree = cKDTree(pts)
    v = np.asarray(vertices, np.float64)
    q = np.asarray(points, np.float64)
    out = np.empty(len(q))
    for s in range(0, len(q), chunk):
        block = q[s:s + chunk]
        _, nn = tree.query(block, k=candidates)
        tri = faces[fid[nn]]  # (n, k, 3)
        cp = _closest_on_triangles(block[:, None, :], v[tri[..., 0]], v[tri[..., 1]], v[tri[..., 2]])
        out[s:s + chunk] = np.linalg.norm(cp - block[:, None, :], axis=-1).min(1)
    return out


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Symmetric Chamfer distance of point sets (mean nearest-neighbour distances, not squared):
    ``(0.5 (a→b + b→a), a→b, b→a)``."""
    from scipy.spatial import cKDTree

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) == 0 or len(b) == 0:
        raise InputError("Chamfer distance needs two non-empty point sets")
    ab = float(cKDTree(b).query(a)[0].mean())
    ba = float(cKDTree(a).query(b)[0].mean())
    return 0.5 * (ab + ba), ab, ba


# -- procedural worlds: exact geometry for evaluation ----------------------------------------------------------------
def world_surface_distance(world, points: np.ndarray) -> np.ndarray:
    """Exact unsigned distance from ``points (P, 3)`` to the surfaces of a static
    :class:`lyra3d.worlds.World` (at time 0): floors and walls (bounded planes), spheres, yawed boxes and
    capped vertical cylinders."""
    p = np.asarray(points, np.float64)
    best = np.full(len(p), np.inf)
    for s in world.surfaces:
        if s.kind == "plane":
            a = s.axis
            normal_d = p[:, a] - s.offset
            out2 = np.zeros(len(p))
            for k in range(3):
                if k == a:
                    continue
                lo, hi = s.bounds[k]
                out2 += np.maximum(np.maximum(lo - p[:, k], p[:, k] - hi), 0.0) ** 2
            if math.isfinite(s.radius):
                rel = [p[:, k] - s.origin[k] for k in range(3) if k != a]
                radial = np.maximum(np.hypot(rel[0], rel[1]) - s.radius, 0.0)
                out2 = np.maximum(out2, radial ** 2)
            d = np.sqrt(normal_d ** 2 + out2)
        else:
            rel = p - np.asarray(s.center)
            c, sn = math.cos(s.yaw), math.sin(s.yaw)
            x, y, z = c * rel[:, 0] - sn * rel[:, 2], rel[:, 1], sn * rel[:, 0] + c * rel[:, 2]  # world → local
            if s.kind == "sphere":
                d = np.abs(np.sqrt(x * x + y * y + z * z) - s.radius)
            else:
                if s.kind == "box":
                    q = np.stack([np.abs(x), np.abs(y), np.abs(z)], 1) - np.asarray(s.half_size)
                else:  # cylinder: (radial, vertical)
                    q = np.stack([np.hypot(x, z) - s.radius, np.abs(y) - s.half_height], 1)
                outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
                inside = -np.minimum(q.max(1), 0.0)
                d = outside + inside  # one of the two is zero
        best = np.minimum(best, d)
    return best


def world_surface_samples(world, cameras: Cameras, max_depth: float | None = None,
                          max_points: int = 200_000, seed: int = 0) -> np.ndarray:
    """Points of ``world``'s true surface seen by ``cameras`` (one per pixel, nearer than ``max_depth``),
    at most ``max_points`` of them (a random subset)."""
    from lyra3d import worlds

    pts = []
    for i in range(0, len(cameras), 8):
        cams = cameras[i:i + 8]
        r = worlds.render(world, cams, shadows=False)
        ok = r.mask > 0
        if max_depth is not None:
            ok &= r.depth <= max_depth
        depth = torch.where(ok, r.depth, torch.zeros_like(r.depth))
        from lyra3d.cache3d import unproject

        cache = unproject(r.rgb, depth, cams)
        pts.append(cache.points[cache.valid].double().numpy())
    p = np.concatenate(pts)
    if len(p) > max_points:
        p = p[np.random.default_rng(seed).choice(len(p), max_points, replace=False)]
    return p


@dataclass
class MeshEvaluation:
    """Surface error of a mesh against a procedural world's exact geometry (scene units).

    ``accuracy``: mean distance of mesh surface samples to the true surface; ``completeness``: mean distance
    of true surface points seen by the cameras to the mesh; ``chamfer`` their mean; ``scene_size`` the
    diagonal of the bounding box of those true points; ``floor_height_error`` the fitted floor's height
    error below the scene centre; ``floor_tilt_degrees`` the angle between the fitted and true floor normals.
    """

    chamfer: float
    accuracy: float
    completeness: float
    scene_size: float
    floor_height_error: float | None
    floor_tilt_degrees: float | None

    @property
    def chamfer_fraction(self) -> float:
        return self.chamfer / self.scene_size

    def to_dict(self) -> dict:
        return {"chamfer": self.chamfer, "accuracy": self.accuracy, "completeness": self.completeness,
                "scene_size": self.scene_size, "chamfer_fraction": self.chamfer_fraction,
                "floor_height_error": self.floor_height_error, "floor_tilt_degrees": self.floor_tilt_degrees}


def evaluate_mesh(mesh: MeshResult, world, cameras: Cameras, samples: int = 200_000, seed: int = 0,
                  width: int = 160) -> MeshEvaluation:
    """Compare an extracted mesh (in the world's frame) with a procedural world's exact surface.

    The true surface is what ``cameras`` see (ray cast at ``width`` pixels wide) up to the mesh's
    ``max_depth``; see :class:`MeshEvaluation`.
    """
    h = max(8, int(round(cameras.height * width / cameras.width)))
    truth = world_surface_samples(world, cameras.resized(width, h), mesh.max_depth, samples, seed)
    mesh_pts, _ = sample_surface(mesh.vertices, mesh.faces, samples, seed)
    accuracy = float(world_surface_distance(world, mesh_pts).mean())
    completeness = float(point_mesh_distance(truth, mesh.vertices, mesh.faces, seed=seed).mean())
    size = float(np.linalg.norm(truth.max(0) - truth.min(0)))
    height_err = tilt = None
    if mesh.ground is not None:
        floor = next((p for p in world.planes if p.role == "floor"), None)
        if floor is not None:
            centre = np.array([0.0, world.ground_height, float(world.center_depth or 5.0)])
            height_err = float(abs(mesh.ground.height(centre)))
            tilt = float(np.degrees(np.arccos(np.clip(mesh.ground.normal @ np.array(SCENE_UP), -1, 1))))
    return MeshEvaluation(chamfer=0.5 * (accuracy + completeness), accuracy=accuracy, completeness=completeness,
                          scene_size=size, floor_height_error=height_err, floor_tilt_degrees=tilt)


# -- procedural worlds as stand-ins for generated scenes -------------------------------------------------------------
def world_cameras(world, frames: int = 9, width: int = 320, height: int = 176,
                  movement_factor: float = 1.0) -> Cameras:
    """Lyra's six trajectories from the default input camera, concatenated (``6 * frames`` cameras)."""
    from lyra3d import worlds

    trajs = lyra_trajectories(default_camera(width, height), frames, worlds.center_depth(world),
                              movement_factor=movement_factor)
    return Cameras.cat(list(trajs.values()))


def gaussians_from_world(world, cameras: Cameras, stride: int = 2, opacity: float = 0.95,
                         scale: float = 0.6, thickness: float = 0.05, shadows: bool = True) -> Gaussians:
    """Pixel-aligned Gaussians from ray-cast renders of ``world``: a stand-in for a decoder's output.

    Every ``stride``-th pixel (in x and y) of every camera that hits a surface becomes a flat Gaussian (a
    surfel) on the true surface, lying in the surface's tangent plane (normal from the unprojected depth
    map's neighbours), with the pixel's colour, opacity ``opacity``, a radius of ``scale`` times its
    footprint (``stride`` pixels at its depth) and ``thickness`` times that along the normal. Each surface
    point gets one layer: pixels within one footprint of a Gaussian that an earlier camera placed are
    skipped (as a trained scene holds one surface, not one copy per view). Flat
    Gaussians render the depth of oblique surfaces faithfully, as a trained scene does; round ones would
    pull it towards the camera by a good part of their radius.
    """
    from lyra3d import worlds
    from lyra3d.cache3d import unproject

    from scipy.spatial import cKDTree

    parts = []
    kept = np.zeros((0, 3))
    for i in range(0, len(cameras), 8):
        cams = cameras[i:i + 8]
        r = worlds.render(world, cams, shadows=shadows)
        depth = torch.where(r.mask > 0, r.depth, torch.zeros_like(r.depth))
        cache = unproject(r.rgb, depth, cams)
        b, h, w = len(cams), cams.height, cams.width
        p = cache.points.reshape(b, h, w, 3)
        dx = torch.zeros_like(p)
        dy = torch.zeros_like(p)
        dx[:, :, 1:-1] = p[:, :, 2:] - p[:, :, :-2]
        dy[:, 1:-1] = p[:, 2:] - p[:, :-2]
        normal = torch.nn.functional.normalize(torch.linalg.cross(dx, dy), dim=-1).reshape(b, -1, 3)
        keep = torch.zeros(b, h, w, dtype=torch.bool)
        keep[:, stride // 2::stride, stride // 2::stride] = True
        keep = keep.reshape(b, -1) & cache.valid & (normal.norm(dim=-1) > 0.5)
        spacing = stride * depth.reshape(b, -1) / cams.intrinsics[:, :1]
        for j in range(b):  # one layer of surfels: skip surface that earlier views already cover
            sel = torch.nonzero(keep[j]).squeeze(1)
            pts = cache.points[j, sel].double().numpy()
            if len(kept):
                dist, _ = cKDTree(kept).query(pts, k=1)
                sel = sel[torch.from_numpy(dist > spacing[j, sel].double().numpy())]
            if len(sel) == 0:
                continue
            kept = np.concatenate([kept, cache.points[j, sel].double().numpy()])
            parts.append((cache.points[j, sel], cache.colors[j, sel], scale * spacing[j, sel], normal[j, sel]))
    means = torch.cat([p[0] for p in parts]).float()
    rgb = torch.cat([p[1] for p in parts]).float()
    radius = torch.cat([p[2] for p in parts]).float()
    nrm = torch.cat([p[3] for p in parts]).float()
    n = len(means)
    # a frame whose third axis is the normal
    helper = torch.where((nrm[:, :1].abs() < 0.9), torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([[0.0, 1.0, 0.0]]))
    t1 = torch.nn.functional.normalize(torch.linalg.cross(nrm, helper), dim=-1)
    t2 = torch.linalg.cross(nrm, t1)
    rot = torch.stack([t1, t2, nrm], dim=-1)  # columns
    quats = _rotmats_to_quats(rot)
    scales = torch.stack([radius, radius, thickness * radius], dim=-1)
    return Gaussians.from_activated(means, scales, quats, torch.full((n,), opacity), rgb)


def _rotmats_to_quats(r: Tensor) -> Tensor:
    """``wxyz`` unit quaternions of rotation matrices ``(N, 3, 3)`` (Shepperd's method, batched)."""
    m = r.double()
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0],
                     m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                     m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                     1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
    ], 1)  # (N, 4 candidates, 4): each is 4·q·(its largest component), stable when that component is large
    diag = torch.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1)
    pick = diag.argmax(-1)
    q = cands[torch.arange(len(m)), pick]
    return torch.nn.functional.normalize(q, dim=-1).float()


def write_world_scene(world, out_dir: str | Path, frames: int = 9, width: int = 320, height: int = 176,
                      stride: int = 2, shadows: bool = True) -> Path:
    """Write the stand-in for a generated scene folder from a procedural world: ``scene.ply`` (Gaussians from
    :func:`gaussians_from_world`) and ``cameras.json`` (Lyra's six trajectories, :func:`world_cameras`).
    ``world`` is a :class:`~lyra3d.worlds.World` or a seed."""
    from lyra3d import worlds
    from lyra3d.gaussians import save_ply

    if isinstance(world, (int, np.integer)):
        world = worlds.make_world(int(world))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cams = world_cameras(world, frames, width, height)
    save_ply(gaussians_from_world(world, cams, stride, shadows=shadows), out / "scene.ply")
    cams.save_json(out / "cameras.json")
    return out
