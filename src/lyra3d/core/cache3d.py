"""The 3D cache (GEN3C, docs/design.md §1/§3): unproject an image with its z-depth into coloured points, and
forward-warp those points into any camera with a z-buffer.

The warp is what the video model sees of the input in every target frame: warped rgb where the input
shows the surface, and a validity mask that is 0 where the target view sees something the input did not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, pixel_rays
from lyra3d.core.trajectories import LYRA_TRAJECTORIES, lyra_trajectories
from lyra3d.errors import InputError


@dataclass
class PointCache:
    """Coloured points from ``S`` source views, one point per source pixel (``N = H·W``).

    Attributes:
        points: ``(S, N, 3)`` world-space positions.
        colors: ``(S, N, 3)`` rgb in [0, 1].
        valid: ``(S, N)`` True where the source depth was usable.
        images: ``(S, 3, H, W)`` the source images (for resampling colours exactly).
        depths: ``(S, 1, H, W)`` the source z-depths (0 where invalid).
        cameras: the ``S`` source cameras.
    """

    points: Tensor
    colors: Tensor
    valid: Tensor
    images: Tensor
    depths: Tensor
    cameras: Cameras

    @property
    def num_sources(self) -> int:
        return self.points.shape[0]


@dataclass
class Warped:
    """Warped renders of a cache: ``rgb (B, 3, H, W)``, ``mask (B, 1, H, W)`` in {0, 1}, ``depth (B, 1, H, W)``
    (z-depth of the visible cache point, 0 where the mask is 0)."""

    rgb: Tensor
    mask: Tensor
    depth: Tensor


def check_depth(depth: Tensor, image: Tensor) -> None:
    """Raise a one-line :class:`InputError` for a depth map that cannot be unprojected."""
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise InputError(f"depth must be (S, 1, H, W) z-depth, got {tuple(depth.shape)}")
    if depth.shape[-2:] != image.shape[-2:] or depth.shape[0] != image.shape[0]:
        raise InputError(f"depth {tuple(depth.shape)} does not match image {tuple(image.shape)}: "
                         "resize the depth map to the image")
    if not torch.isfinite(depth).all():
        raise InputError(f"depth has {int((~torch.isfinite(depth)).sum())} NaN or infinite values; "
                         "fill or mask them before building the cache")
    if (depth < 0).any():
        raise InputError("depth has negative values; lyra3d expects z-depth (distance along the optical axis)")
    if not (depth > 0).any():
        raise InputError("depth is zero everywhere; nothing can be unprojected")


def unproject(image: Tensor, depth: Tensor, cameras: Cameras) -> PointCache:
    """Lift ``image (S, 3, H, W)`` with z-depth ``depth (S, 1, H, W)`` seen by ``cameras`` (S) to points.

    Pixels with depth 0 are marked invalid (sky, unknown).
    """
    if image.ndim == 3:
        image = image[None]
    if depth.ndim == 3:
        depth = depth[None]
    if image.ndim != 4 or image.shape[1] != 3:
        raise InputError(f"image must be (S, 3, H, W), got {tuple(image.shape)}")
    check_depth(depth, image)
    if len(cameras) != image.shape[0] or (cameras.height, cameras.width) != tuple(image.shape[-2:]):
        raise InputError(f"{len(cameras)} cameras of {cameras.width}x{cameras.height} do not match images "
                         f"{tuple(image.shape)}")
    origins, dirs = pixel_rays(cameras)  # (S, H, W, 3)
    # Unit ray d has z-component cos(angle to the optical axis) in camera space: ray length = z / cos.
    fwd = cameras.camera_to_world[:, :3, 2]  # (S, 3)
    cos = torch.einsum("shwc,sc->shw", dirs, fwd)
    z = depth[:, 0]
    points = origins + dirs * (z / cos)[..., None]
    s = image.shape[0]
    return PointCache(points=points.reshape(s, -1, 3), colors=image.permute(0, 2, 3, 1).reshape(s, -1, 3),
                      valid=(z > 0).reshape(s, -1), images=image, depths=depth, cameras=cameras)


#: Source points × target cameras per splatting chunk (memory): about 17 targets of a 320×176 source on a CPU;
#: on a GPU larger chunks keep the number of launches (and syncs) down.
PAIR_BUDGET = {"cpu": 1 << 20, "cuda": 1 << 24}
#: Target pixels per pass of :func:`warp_each` (memory of the crack filling and colour resampling: about 80 bytes
#: per target pixel): on a GPU about 11 scenes of 6 × 17 targets at 320×176 per pass.
TARGET_BUDGET = {"cpu": 1 << 22, "cuda": 1 << 26}


def warp(cache: PointCache, cameras: Cameras, source: int | None = None, depth_tolerance: float = 0.02,
         edge_tolerance: float = 0.05, fill_cracks: bool = True, chunk: int | None = None) -> Warped:
    """Forward-warp the cache into ``cameras`` (B targets) with a z-buffer.

    Depth goes forward, colour comes back: each point is splatted to the 2×2 pixels around its projection
    with bilinear weights; a pixel's z-buffer is the nearest point that lands mainly on it (its nearest
    pixel), or, where none does, the nearest that touches it; its depth is the weighted mean of the points
    within ``depth_tolerance`` (relative) of that, so the nearest surface wins and background never
    bleeds through foreground. One pass then closes one-pixel cracks that magnification leaves in a
    surface. Finally, for a single source view, each valid pixel is unprojected with its depth and its
    colour sampled bilinearly from the source image (sharper than averaging splatted colours); where that
    sample touches an occlusion edge of the source (:func:`depth_edges` with ``edge_tolerance``) it would
    mix two surfaces, and the pixel is marked invalid. With several sources together the splatted colours
    are kept.

    Args:
        cameras: ``B`` target cameras.
        source: warp only that source view (one buffer per source, as GEN3C does for several caches);
            ``None`` warps all sources together.
        chunk: target cameras per splatting pass (memory; default from :data:`PAIR_BUDGET`).

    Returns:
        :class:`Warped` with ``rgb (B, 3, H, W)``, ``mask (B, 1, H, W)``, ``depth (B, 1, H, W)``.
    """
    if source is None and cache.num_sources > 1:  # all sources in one z-buffer, splatted colours
        pts, col, ok = (x.reshape(1, -1, *x.shape[2:]) for x in (cache.points, cache.colors, cache.valid))
        rgb, mask, depth = _splat_groups(pts, ok, col, cameras, depth_tolerance, chunk)
        if fill_cracks:
            rgb, mask, depth = _fill_cracks(rgb, mask, depth)
        return Warped(rgb, mask, depth)
    s = source or 0
    one = PointCache(cache.points[s:s + 1], cache.colors[s:s + 1], cache.valid[s:s + 1], cache.images[s:s + 1],
                     cache.depths[s:s + 1], cache.cameras[s:s + 1])
    return warp_each(one, cameras, depth_tolerance, edge_tolerance, fill_cracks, chunk)


def warp_each(cache: PointCache, cameras: Cameras, depth_tolerance: float = 0.02, edge_tolerance: float = 0.05,
              fill_cracks: bool = True, chunk: int | None = None) -> Warped:
    """Each of the cache's ``S`` sources warped alone into its own ``K`` targets, all in one call: source ``s``
    into ``cameras[s·K:(s+1)·K]`` (``len(cameras) = S·K``), exactly as :func:`warp` with ``source=s`` warps it
    (:func:`warp` of one source is this with ``S = 1``). What a batch of scenes (one source each) or a video's
    per-frame caches need: one pass over every (source, target) pair instead of one call per source.

    Returns :class:`Warped` of ``S·K`` targets, source-major."""
    s = cache.num_sources
    if len(cameras) % s:
        raise InputError(f"{len(cameras)} target cameras are not {s} sources × an equal number of targets")
    k = len(cameras) // s
    # whole sources per pass, about TARGET_BUDGET target pixels each (the crack filling and resampling hold
    # several images per target); every step is per target, so the passes do not change the result
    budget = TARGET_BUDGET.get(cache.points.device.type, TARGET_BUDGET["cuda"])
    step = max(1, budget // (k * cameras.width * cameras.height))
    parts = []
    for i in range(0, s, step):
        j = min(s, i + step)
        cams = cameras[i * k:j * k]
        rgb, mask, depth = _splat_groups(cache.points[i:j], cache.valid[i:j], None, cams, depth_tolerance, chunk)
        if fill_cracks:
            rgb, mask, depth = _fill_cracks(rgb, mask, depth)
        rgb, mask = _resample(cache.images[i:j], cache.depths[i:j], cache.cameras[i:j], cams, depth, mask, rgb,
                              edge_tolerance)
        parts.append((rgb, mask, depth * mask))
    return Warped(*(torch.cat(x) if len(parts) > 1 else x[0] for x in zip(*parts)))


def _splat_groups(pts: Tensor, ok: Tensor, col: Tensor | None, cams: Cameras, tol: float, chunk: int | None
                  ) -> tuple[Tensor, Tensor, Tensor]:
    """Group ``g``'s points ``pts[g] (N, 3)`` (those where ``ok[g]``; colours ``col[g]`` or None) splatted into
    the targets ``cams[g·K:(g+1)·K]``: rgb, mask, depth of all ``G·K`` targets. Each group's targets go in
    passes of ``chunk`` cameras counted from its first, so a group's passes are the same whatever the other groups
    (a scene warped in a batch is bit for bit the scene warped alone)."""
    g, n = pts.shape[:2]
    k = len(cams) // g
    if chunk is None:
        chunk = max(1, PAIR_BUDGET.get(pts.device.type, PAIR_BUDGET["cuda"]) // max(1, n))
    outs = []
    for i in range(g):
        p, c = pts[i][ok[i]], None if col is None else col[i][ok[i]]
        outs += [_splat(p, c, cams[j:min(j + chunk, (i + 1) * k)], tol) for j in range(i * k, (i + 1) * k, chunk)]
    return tuple(torch.cat(parts) for parts in zip(*outs))


def _splat(pts: Tensor, col: Tensor | None, cams: Cameras, tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Bilinear forward splatting with a z-buffer: rgb (zeros when ``col`` is None), mask and depth of ``B``
    targets."""
    b, h, w = len(cams), cams.height, cams.width
    dev, dt = pts.device, pts.dtype
    w2c = cams.world_to_camera.to(dev, dt)
    p = torch.einsum("bij,nj->bni", w2c[:, :3, :3], pts) + w2c[:, None, :3, 3]  # (B, N, 3)
    z = p[..., 2]
    zs = z.clamp_min(1e-6)
    k = cams.intrinsics.to(dev, dt)
    u = k[:, None, 0] * p[..., 0] / zs + k[:, None, 2] - 0.5  # pixel coordinates, centres at integers
    v = k[:, None, 1] * p[..., 1] / zs + k[:, None, 3] - 0.5
    # Keep the (camera, point) pairs that land in or next to the image: the rest cost nothing more.
    keep = (z > 1e-6) & (u > -1) & (v > -1) & (u < w) & (v < h)
    bi, ni = keep.nonzero(as_tuple=True)
    u, v, z = u[bi, ni], v[bi, ni], z[bi, ni]
    u0, v0 = torch.floor(u), torch.floor(v)
    fu, fv = u - u0, v - v0
    base = bi * (h * w)
    dump = b * h * w  # one extra slot receives every tap that falls outside the image
    inf = torch.tensor(float("inf"), device=dev, dtype=dt)
    taps = []
    for du, dv in ((0, 0), (1, 0), (0, 1), (1, 1)):
        uu, vv = u0 + du, v0 + dv
        weight = (fu if du else 1 - fu) * (fv if dv else 1 - fv)
        # Taps of negligible weight (a point exactly on a pixel centre) do not touch that neighbour.
        inside = (uu >= 0) & (vv >= 0) & (uu < w) & (vv < h) & (weight > 0.01)
        flat = torch.where(inside, base + vv.long() * w + uu.long(), dump)
        taps.append((flat, torch.where(inside, z, inf), weight))
    core = torch.full((dump + 1,), float("inf"), device=dev, dtype=dt)
    foot = core.clone()
    for flat, zz, weight in taps:
        foot.scatter_reduce_(0, flat, zz, reduce="amin")
        core.scatter_reduce_(0, flat, torch.where(weight >= 0.25, zz, inf), reduce="amin")
    zbuf = torch.where(torch.isinf(core), foot, core)
    # Weighted sums of (rgb,) depth and weight over the points near each pixel's z-buffer.
    values = [z[:, None], torch.ones_like(z[:, None])]
    if col is not None:
        values.insert(0, col[ni])
    values = torch.cat(values, 1)
    acc = torch.zeros(dump + 1, values.shape[1], device=dev, dtype=dt)
    for flat, zz, weight in taps:
        wgt = torch.where(zz <= zbuf[flat] * (1 + tol), weight, torch.zeros_like(weight))
        acc.index_add_(0, flat, values * wgt[:, None])
    acc = acc[:dump]
    mask = acc[:, -1] > 0
    mean = acc[:, :-1] / acc[:, -1:].clamp_min(1e-12)
    depth = torch.where(mask, mean[:, -1], torch.zeros_like(mean[:, -1]))
    rgb = mean[:, :3] if col is not None else torch.zeros(dump, 3, device=dev, dtype=dt)
    return (rgb.reshape(b, h, w, 3).permute(0, 3, 1, 2), mask.reshape(b, 1, h, w).to(dt), depth.reshape(b, 1, h, w))


def depth_edges(depth: Tensor, tolerance: float = 0.05) -> Tensor:
    """``(1, H, W)`` 1 at occlusion edges of a z-depth map ``(1, H, W)``, else 0 (or ``(S, 1, H, W)`` of ``S``).

    Inverse depth is affine in pixel coordinates on a plane, so its second difference vanishes on smooth
    surfaces; a pixel is an edge where that second difference (along x, y or a diagonal) exceeds
    ``tolerance`` times its inverse depth on the far side of a jump (the near side keeps clean samples of
    the nearer surface), or where it borders an invalid (0) pixel.
    """
    inv = torch.where(depth > 0, 1 / depth.clamp_min(1e-6), torch.zeros_like(depth))
    p = torch.nn.functional.pad(inv if inv.ndim == 4 else inv[None], (1, 1, 1, 1), mode="replicate")
    p = p if inv.ndim == 4 else p[0]
    c = p[..., 1:-1, 1:-1]
    edge = torch.zeros_like(c, dtype=torch.bool)
    h, w = c.shape[-2:]
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = p[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]
        b = p[..., 1 - dy: 1 - dy + h, 1 - dx: 1 - dx + w]
        edge |= (a + b - 2 * c) > tolerance * c  # c is behind the line through its neighbours
        edge |= (c > 0) & ((a == 0) | (b == 0))
    return edge.to(depth.dtype)


def _resample(images: Tensor, src_depths: Tensor, sources: Cameras, targets: Cameras, depth: Tensor, mask: Tensor,
              rgb: Tensor, edge_tolerance: float) -> tuple[Tensor, Tensor]:
    """Colour of each valid target pixel sampled bilinearly from its source image, and the mask less the pixels
    whose sample straddles a depth edge of the source's depth: target ``j`` of ``targets`` (S·K) belongs to source
    ``j // K`` of ``images (S, 3, H, W)``, ``src_depths (S, 1, H, W)`` seen by ``sources`` (S)."""
    b, h, w = depth.shape[0], depth.shape[-2], depth.shape[-1]
    dt, dev = depth.dtype, depth.device
    owner = torch.arange(b, device=dev) // (b // len(sources))
    # Target pixel -> target camera space (x = (u - cx) / fx · z, ...) -> source camera space, in one 4x4.
    fx, fy, cx, cy = (targets.intrinsics[:, i, None, None].to(dt) for i in range(4))
    vv, uu = torch.meshgrid(torch.arange(h, device=dev, dtype=dt) + 0.5, torch.arange(w, device=dev, dtype=dt) + 0.5,
                            indexing="ij")
    z = depth[:, 0]
    cam = ((uu - cx) / fx * z, (vv - cy) / fy * z, z)
    # Products written out (the same arithmetic whatever the batch: no batched matmul).
    src, tgt = sources.world_to_camera.to(dev, dt)[owner], targets.camera_to_world.to(dev, dt)
    m = sum(src[:, :, i, None] * tgt[:, None, i, :] for i in range(4))  # (B, 4, 4)
    p = [sum(m[:, r, i, None, None] * cam[i] for i in range(3)) + m[:, r, 3, None, None] for r in range(3)]
    k = sources.intrinsics.to(dev, dt)[owner]
    zs = p[2].clamp_min(1e-6)
    u = k[:, 0, None, None] * p[0] / zs + k[:, 2, None, None]
    v = k[:, 1, None, None] * p[1] / zs + k[:, 3, None, None]
    grid = torch.stack([2 * u / sources.width - 1, 2 * v / sources.height - 1], -1)
    edges = depth_edges(src_depths, edge_tolerance)
    both = torch.cat([images.to(dt), edges.to(dt)], 1)[owner]
    sampled = torch.nn.functional.grid_sample(both, grid, mode="bilinear", padding_mode="border", align_corners=False)
    consistent = (sampled[:, 3:] == 0)
    mask = mask * consistent.to(mask.dtype)
    return torch.where(mask > 0, sampled[:, :3], rgb), mask


def _fill_cracks(rgb: Tensor, mask: Tensor, depth: Tensor, margin: float = 0.1) -> tuple[Tensor, Tensor, Tensor]:
    """Close one-pixel gaps in surfaces: a pixel that is empty, or farther than ``margin`` (relative) behind
    both of two opposite neighbours (left/right, up/down or a diagonal pair), takes their mean. Edges of a
    surface have a nearer neighbour on one side only and stay as they are."""
    h, w = rgb.shape[-2:]
    pad = lambda x: torch.nn.functional.pad(x, (1, 1, 1, 1))  # noqa: E731 (zero mask outside the image)
    prgb, pmask, pdepth = pad(rgb), pad(mask), pad(depth)
    shift = lambda x, dy, dx: x[..., 1 + dy: 1 + dy + h, 1 + dx: 1 + dx + w]  # noqa: E731
    acc_rgb, acc_depth = torch.zeros_like(rgb), torch.zeros_like(depth)
    count = torch.zeros_like(depth)
    for (ay, ax), (by, bx) in (((0, -1), (0, 1)), ((-1, 0), (1, 0)), ((-1, -1), (1, 1)), ((-1, 1), (1, -1))):
        da, db = shift(pdepth, ay, ax), shift(pdepth, by, bx)
        both = (shift(pmask, ay, ax) > 0) & (shift(pmask, by, bx) > 0)
        gap = (mask == 0) | ((da * (1 + margin) < depth) & (db * (1 + margin) < depth))
        take = (both & gap).to(rgb.dtype)
        acc_rgb += take * 0.5 * (shift(prgb, ay, ax) + shift(prgb, by, bx))
        acc_depth += take * 0.5 * (da + db)
        count += take
    fill = count > 0
    n = count.clamp_min(1)
    return (torch.where(fill, acc_rgb / n, rgb), torch.where(fill, torch.ones_like(mask), mask),
            torch.where(fill, acc_depth / n, depth))


@dataclass
class TrajectoryCondition:
    """What the video model is conditioned on along one trajectory: its ``cameras`` (T) and the cache
    warped into them (``warped.rgb (T, 3, H, W)``, ``warped.mask (T, 1, H, W)``)."""

    cameras: Cameras
    warped: Warped


def scene_center_depth(depth: Tensor, far_quantile: float = 0.9) -> float:
    """The scene's centre depth from a depth map: the median of the valid depths below their
    ``far_quantile`` (so a far sky or background does not pull the trajectories' look-at point away)."""
    d = depth[(depth > 0) & torch.isfinite(depth)]
    if d.numel() == 0:
        raise InputError("depth has no positive finite value to take the scene's centre depth from")
    d = d[d <= torch.quantile(d.float()[:: max(1, d.numel() // 100_000)], far_quantile)]
    return float(d.median())


def multi_trajectory_conditioning(image: Tensor, depth: Tensor, camera: Cameras, num_frames: int = 17,
                                  movement_factor: float = 1.0, center_depth: float | None = None,
                                  names: tuple[str, ...] = LYRA_TRAJECTORIES,
                                  generator: torch.Generator | None = None) -> dict[str, TrajectoryCondition]:
    """Lyra's multi-trajectory conditioning: the six trajectories (docs/design.md §3) from the input ``camera``,
    scaled by the scene's centre depth (from ``depth`` unless given) and ``movement_factor``, each with the
    input's cache warped into every frame. (One scene of :func:`multi_trajectory_conditioning_batch`.)

    Args:
        image: ``(1, 3, H, W)`` or ``(3, H, W)`` input image in [0, 1].
        depth: ``(1, 1, H, W)`` z-depth of the image (0 where unknown).
        camera: the input camera (one).
        generator: draw each movement from its range (training); ``None``: the middle of each range.
    """
    image = image if image.ndim == 4 else image[None]
    depth = depth if depth.ndim == 4 else depth[None]
    if image.shape[0] != 1:
        raise InputError(f"one image (1, 3, H, W) per call, got {tuple(image.shape)}; "
                         "use multi_trajectory_conditioning_batch for several")
    return multi_trajectory_conditioning_batch(image, depth, camera, num_frames, movement_factor,
                                               None if center_depth is None else [center_depth], names,
                                               generator)[0]


def multi_trajectory_conditioning_batch(images: Tensor, depths: Tensor, camera: Cameras, num_frames: int = 17,
                                        movement_factor: float = 1.0, center_depths: Sequence[float] | None = None,
                                        names: tuple[str, ...] = LYRA_TRAJECTORIES,
                                        generator: torch.Generator | None = None
                                        ) -> list[dict[str, TrajectoryCondition]]:
    """:func:`multi_trajectory_conditioning` of ``B`` scenes at once: ``images (B, 3, H, W)`` with z-depths
    ``depths (B, 1, H, W)``, all seen by ``camera`` (one); scene ``i``'s trajectories are scaled by
    ``center_depths[i]`` (default: from its depth). Each scene's cache is warped into its own ``V × T`` cameras,
    all ``B × V × T`` in one :func:`warp_each`; scene ``i``'s result is exactly what a call for it alone gives."""
    b = images.shape[0]
    if len(camera) != 1:
        raise InputError(f"one input camera for every scene, got {len(camera)}")
    if center_depths is not None and len(center_depths) != b:
        raise InputError(f"{b} scenes need {b} centre depths, got {len(center_depths)}")
    cache = unproject(images, depths, camera[[0] * b])
    trajs = []
    for i in range(b):
        one = PointCache(cache.points[i:i + 1], cache.colors[i:i + 1], cache.valid[i:i + 1],
                         cache.images[i:i + 1], cache.depths[i:i + 1], cache.cameras[i:i + 1])
        trajs.append(_condition_paths(one, num_frames, movement_factor,
                                      None if center_depths is None else center_depths[i], names, generator))
    per_scene = sum(len(c) for c in trajs[0].values())
    warped = warp_each(cache, Cameras.cat([cams for t in trajs for cams in t.values()]))
    out = []
    for i, t in enumerate(trajs):
        at, scene = i * per_scene, {}
        for name, cams in t.items():
            part = slice(at, at + len(cams))
            scene[name] = TrajectoryCondition(cams, Warped(warped.rgb[part], warped.mask[part], warped.depth[part]))
            at += len(cams)
        out.append(scene)
    return out


def per_frame_trajectory_conditioning(images: Tensor, depths: Tensor, cameras: Cameras, movement_factor: float = 1.0,
                                      center_depth: float | None = None, names: tuple[str, ...] = LYRA_TRAJECTORIES,
                                      generator: torch.Generator | None = None) -> dict[str, TrajectoryCondition]:
    """The dynamic (4D) variant of :func:`multi_trajectory_conditioning`, for a video of ``T`` frames: one
    cache per frame. The trajectories (``T`` cameras each) start at the first input camera and are scaled by
    the centre depth of the first frame (unless given); frame ``t`` of every trajectory is the cache of input
    frame ``t`` alone warped into that trajectory's camera ``t``, so what moves is where it is at time ``t``.
    For a video whose frames are all the same image seen by one camera this equals
    :func:`multi_trajectory_conditioning` of that image.

    Args:
        images: ``(T, 3, H, W)`` the video's frames in [0, 1].
        depths: ``(T, 1, H, W)`` their z-depths (0 where unknown).
        cameras: the ``T`` input cameras (one per frame).
        generator: draw each movement from its range (training); ``None``: the middle of each range.
    """
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must be (T, 3, H, W) video frames, got {tuple(images.shape)}")
    cache = unproject(images, depths, cameras)
    t = images.shape[0]
    trajs = _condition_paths(cache, t, movement_factor, center_depth, names, generator)
    # Each input frame's cache into that frame's camera on every trajectory: all frames in one warp (frame-major).
    v = len(trajs)
    w = warp_each(cache, Cameras.cat([cams[i] for i in range(t) for cams in trajs.values()]))
    parts = [x.reshape(t, v, *x.shape[1:]) for x in (w.rgb, w.mask, w.depth)]
    return {name: TrajectoryCondition(cams, Warped(*(x[:, j] for x in parts))) for j, (name, cams) in
            enumerate(trajs.items())}


def _condition_paths(cache: PointCache, num_frames: int, movement_factor: float, center_depth: float | None,
                     names: tuple[str, ...], generator: torch.Generator | None) -> dict[str, Cameras]:
    """Lyra's trajectories from the cache's first source camera, scaled by the centre depth of its first
    source (unless ``center_depth`` is given)."""
    if center_depth is None:
        center_depth = scene_center_depth(cache.depths[:1])
    return lyra_trajectories(cache.cameras[0], num_frames, center_depth, movement_factor, generator=generator,
                             names=names)
