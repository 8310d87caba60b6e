"""Meshes measured on procedural worlds, whose geometry is exact: :func:`world_surface_distance` (analytic
unsigned distance to a world's surfaces), :func:`world_surface_samples` (ray-cast surface points seen by
cameras), :func:`point_mesh_distance`, :func:`evaluate_mesh` (Chamfer distance, floor height and tilt
errors) and :func:`write_world_scene`, which turns a world into the stand-in for a generated scene folder
(``scene.ply`` + ``cameras.json``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.gaussians import Gaussians, rotmat_to_quat
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.simready.ground import SCENE_UP
from lyra3d.simready.mesh import MeshResult, sample_surface


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
    :class:`lyra3d.data.worlds.World` (at time 0): floors and walls (bounded planes), spheres, yawed boxes and
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
    from lyra3d.data import worlds

    pts = []
    for i in range(0, len(cameras), 8):
        cams = cameras[i:i + 8]
        r = worlds.render(world, cams, shadows=False)
        ok = r.mask > 0
        if max_depth is not None:
            ok &= r.depth <= max_depth
        depth = torch.where(ok, r.depth, torch.zeros_like(r.depth))
        from lyra3d.core.cache3d import unproject

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
    from lyra3d.data import worlds

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
    from scipy.spatial import cKDTree

    from lyra3d.core.cache3d import unproject
    from lyra3d.data import worlds

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
    quats = rotmat_to_quat(rot)
    scales = torch.stack([radius, radius, thickness * radius], dim=-1)
    return Gaussians.from_activated(means, scales, quats, torch.full((n,), opacity), rgb)


def write_world_scene(world, out_dir: str | Path, frames: int = 9, width: int = 320, height: int = 176,
                      stride: int = 2, shadows: bool = True) -> Path:
    """Write the stand-in for a generated scene folder from a procedural world: ``scene.ply`` (Gaussians from
    :func:`gaussians_from_world`) and ``cameras.json`` (Lyra's six trajectories, :func:`world_cameras`).
    ``world`` is a :class:`~lyra3d.data.worlds.World` or a seed."""
    from lyra3d.core.gaussians import save_ply
    from lyra3d.data import worlds

    if isinstance(world, (int, np.integer)):
        world = worlds.make_world(int(world))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cams = world_cameras(world, frames, width, height)
    save_ply(gaussians_from_world(world, cams, stride, shadows=shadows), out / "scene.ply")
    cams.save_json(out / "cameras.json")
    return out
