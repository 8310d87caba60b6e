"""Truncated-signed-distance fusion (Curless & Levoy) of depth maps on a sparse voxel band, in numpy (see
:mod:`lyra3d.simready.mesh`, step 2): distances to the observed surface's tangent plane, so grazing floors
do not fall apart; only voxels within the truncation distance of an observed point are stored."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.errors import InputError
from lyra3d.simready.config import ExtractionConfig


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
    from lyra3d.core.cache3d import unproject

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
