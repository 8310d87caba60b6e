"""Surface extraction: a coloured triangle mesh from 3D Gaussians, for collision and for other tools.

:func:`extract_mesh` turns a scene (Gaussians + the cameras that generated it) into a mesh in six steps:

1. **Depth renders** (:func:`render_depths`). The Gaussians are rasterized (:func:`lyra3d.core.render.rasterize`,
   the C kernel on CPU) at up to ``max_views`` of the trajectory cameras. Depth comes from the first two
   moments of *inverse* depth rendered as colour channels, not from the expected depth, which a surface of
   opacity 0.99 in front of a far background (a sky at 500 m) pulls metres backwards. A pixel counts as
   surface where its opacity is at least ``min_alpha``, its depth is at most ``max_depth`` (sky and far
   splats are dropped), its inverse depth spreads little along the ray (no see-through or mixed pixels) and it
   is not at an occlusion edge (:func:`lyra3d.core.cache3d.depth_edges`).
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
   of the scene's up direction (``-y``, docs/design.md §2) that has no more of the surface under it than on it (the
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

Units are scene units (metres by docs/design.md §2's convention); the mesh lives in the scene's OpenCV world frame.

Meshes are measured on procedural worlds in :mod:`lyra3d.evaluation.mesh`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError
from lyra3d.simready.config import SIM_INSTALL, ExtractionConfig
from lyra3d.simready.ground import SCENE_UP, GroundPlane, fill_under_ground, fit_ground_plane, floor_footprint
from lyra3d.simready.tsdf import TSDFVolume, fuse_tsdf


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
    from lyra3d.core.cache3d import depth_edges
    from lyra3d.core.gaussians import SH_C0
    from lyra3d.core.render import rasterize

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


# -- the pipeline ----------------------------------------------------------------------------------------------------
def extract_mesh(gaussians: Gaussians, cameras: Cameras, config: ExtractionConfig = ExtractionConfig(),
                 progress: Progress | None = None) -> MeshResult:
    """Extract a coloured, decimated triangle mesh of the scene's surface (see the module notes).

    Args:
        gaussians: the scene.
        cameras: the cameras that generated it (all trajectories); up to ``config.max_views`` are used.
        config: :class:`ExtractionConfig`.
        progress: a :class:`~lyra3d.core.progress.Progress`, told ``(stage, 0, 1)`` as each stage that runs
            starts and ``(stage, 1, 1)`` as it ends: ``render`` (depth maps), ``fuse`` (TSDF), ``surface``
            (marching cubes), ``ground`` (the plane), ``floor`` (filled under the ground), ``decimate``.

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
    say = progress or no_progress
    seconds: dict[str, float] = {}
    t0 = t = time.perf_counter()
    started: set[str] = set()

    def begin(name: str) -> None:
        started.add(name)
        say(name, 0, 1)

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[name] = now - t
        t = now
        if name in started:
            say(name, 1, 1)

    views = select_views(len(cameras), config.max_views)
    cams = cameras[torch.from_numpy(views)]
    begin("render")
    depth, rgb, valid, max_depth = render_depths(gaussians, cams, config)
    lap("render")
    begin("fuse")
    volume = fuse_tsdf(depth, rgb, valid, cams, config)
    lap("fuse")
    begin("surface")
    verts, faces, raw_faces = _surface(volume, config.min_component_fraction)
    lap("surface")
    ground = None
    if config.ground:
        begin("ground")
        thr = config.ground_threshold or 1.5 * volume.voxel_size
        samples, _ = sample_surface(verts, faces, min(50_000, 20 * len(faces)), seed=config.seed)
        ground = fit_ground_plane(samples, SCENE_UP, thr, config.ground_max_tilt_degrees,
                                  config.ransac_iterations, config.seed)
    lap("ground")
    footprint = None
    if ground is not None and config.fill_floor:
        footprint = floor_footprint(np.concatenate([verts, cams.centers.double().numpy()]), ground)
    if footprint is not None:
        begin("floor")
        volume = fill_under_ground(volume, footprint, 2 * config.max_voxels)
        verts, faces, raw_faces = _surface(volume, config.min_component_fraction)
    lap("floor")
    begin("decimate")
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
