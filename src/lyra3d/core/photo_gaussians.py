"""The input image as 3D Gaussians (a "3D photo"), and its fusion with a decoder's Gaussians (issue 21).

The 3D cache holds every pixel of the input at its estimated depth; :func:`photo_gaussians` turns it into
one flat Gaussian per pixel (or per ``stride × stride`` block) that renders back to the image at the input
camera:

- **place**: on the ray through the pixel centre at the pixel's z-depth (:func:`lyra3d.core.cache3d.unproject`);
- **size and orientation**: a disc in the surface's tangent plane whose axes are the derivatives of the
  unprojected surface along the image axes, ``∂P/∂u`` and ``∂P/∂v``, times ``footprint`` (the disc's
  standard deviation in pixels at the input camera), and ``thickness`` × that along the normal. Projected
  into the input camera the disc is round and ``footprint`` pixels wide whatever the slant, since the
  projection of ``∂P/∂u`` is exactly one pixel along ``u``;
- **cut at depth edges**: the depth derivatives are one-sided, taken toward the neighbour on the same
  surface (the smaller jump of inverse depth, as :func:`lyra3d.core.cache3d.depth_edges` measures edges); a
  pixel whose neighbours both lie across a jump (or are unknown) faces the camera; and every derivative is
  clamped so a disc is at most ``max_stretch`` footprints long: no Gaussian stretches across a
  discontinuity (no rubber sheets);
- **colour**: solved so that the composite at the input camera gives back the image: there each disc also
  covers a little of its neighbours (the rasterizer's 0.3 px² low-pass and the discs' overlap), so the
  pixels' own colours would render blurred (:func:`input_view_weights`, :func:`solve_colors`).

:func:`fuse` joins the 3D photo with the decoder's Gaussians: a decoder Gaussian that lies in front of, or
on, the surface the input camera sees (within a relative depth ``tolerance``) contradicts the input or
duplicates it and is dropped; those behind it (disocclusions) and outside the input's view (the
trajectories' new parts) are kept. Pure functions over tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lyra3d.core.cache3d import depth_edges
from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians, rgb_to_sh
from lyra3d.errors import InputError

#: The rasterizer's low-pass dilation of every projected covariance, in pixels² (``render.rasterize.EPS2D``).
EPS2D = 0.3


@dataclass(frozen=True)
class PhotoSettings:
    """How the input's Gaussians are made (:func:`photo_gaussians`).

    Attributes:
        stride: one Gaussian per ``stride × stride`` pixel block (colour: the block's mean; depth: its centre
            pixel's).
        footprint: the disc's standard deviation at the input camera, in blocks.
        thickness: the disc's thickness along its normal, as a fraction of its in-plane size.
        max_stretch: longest in-plane axis of a disc, in footprints (a slanted surface stretches its discs).
        edge_tolerance: relative jump of inverse depth that makes an occlusion edge (:func:`depth_edges`).
        opacity: every disc's opacity.
        sharpen: iterations of the colour solve (:func:`solve_colors`; 0: the pixels' own colours).
        freeze_edges: the pixels behind an occlusion edge (:func:`depth_edges`) keep their own colours.
    """

    stride: int = 1
    footprint: float = 0.4
    thickness: float = 0.1
    max_stretch: float = 4.0
    edge_tolerance: float = 0.05
    opacity: float = 0.99
    sharpen: int = 4
    freeze_edges: bool = True

    def validate(self) -> "PhotoSettings":
        if not isinstance(self.stride, int) or self.stride < 1:
            raise InputError(f"photo stride must be a whole number >= 1, got {self.stride!r}")
        for name in ("footprint", "thickness", "edge_tolerance"):
            if not getattr(self, name) > 0:
                raise InputError(f"photo {name} must be > 0, got {getattr(self, name)!r}")
        if not self.max_stretch >= 1:
            raise InputError(f"photo max_stretch must be >= 1, got {self.max_stretch!r}")
        if not 0 < self.opacity < 1:
            raise InputError(f"photo opacity must be in (0, 1), got {self.opacity!r}")
        if not isinstance(self.sharpen, int) or self.sharpen < 0:
            raise InputError(f"photo sharpen must be a whole number >= 0, got {self.sharpen!r}")
        return self


def _check_inputs(image: Tensor, depth: Tensor, camera: Cameras) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise InputError(f"image must be (3, H, W), got {tuple(image.shape)}")
    if depth.shape != (1, *image.shape[-2:]):
        raise InputError(f"depth must be (1, H, W) = {(1, *image.shape[-2:])}, got {tuple(depth.shape)}")
    if len(camera) != 1 or (camera.width, camera.height) != (image.shape[-1], image.shape[-2]):
        raise InputError(f"camera must be one camera of the image's size {image.shape[-1]}x{image.shape[-2]}")


def block_image(image: Tensor, depth: Tensor, camera: Cameras, stride: int) -> tuple[Tensor, Tensor, Cameras]:
    """The image averaged over ``stride × stride`` blocks, the depth at each block's centre pixel (a
    centre of an even block: the pixel right-below it) and the camera of that grid; ``stride`` 1 returns
    them as they are. The size must be a multiple of ``stride``."""
    if stride == 1:
        return image, depth, camera
    h, w = image.shape[-2:]
    if h % stride or w % stride:
        raise InputError(f"an image of {w}x{h} is not a multiple of the photo stride {stride}")
    img = F.avg_pool2d(image[None], stride)[0] if image.ndim == 3 else F.avg_pool2d(image, stride)
    d = depth[..., stride // 2::stride, stride // 2::stride]
    return img, d, camera.resized(w // stride, h // stride)


def surface_tangents(depth: Tensor, camera: Cameras, edge_tolerance: float = 0.05, max_stretch: float = 4.0
                     ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Each pixel's 3D point and the derivatives of the unprojected surface along the image axes, in the
    camera's frame: ``points, du, dv (H, W, 3)`` and ``cut (H, W)`` (True at occlusion edges whose two
    neighbours along some axis both lie across a jump; those face the camera along that axis).

    ``P(u, v) = z(u, v) · r(u, v)`` with ``r = K⁻¹ (u, v, 1)``, so ``∂P/∂u = z_u r + z (1/fx, 0, 0)`` and
    likewise for ``v``. The depth derivative is the one-sided difference toward the neighbour with the
    smaller relative jump, zero where that neighbour is unknown (0) or across an occlusion edge (a jump of
    inverse depth beyond ``edge_tolerance``), and clamped so ``|∂P/∂u| ≤ max_stretch · |z (1/fx, 0, 0)|``
    (a disc no longer than ``max_stretch`` pixels' footprint)."""
    points, du, dv, cut = _surface_tangents(depth[:1], camera, edge_tolerance, max_stretch)
    return points[0], du[0], dv[0], cut[0]


def _surface_tangents(depth: Tensor, camera: Cameras, edge_tolerance: float, max_stretch: float
                      ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:func:`surface_tangents` of ``B`` depth maps ``(B, H, W)`` seen by one ``camera``: ``(B, H, W, ·)``."""
    z = depth
    h, w = z.shape[-2:]
    dev, dt = z.device, z.dtype
    fx, fy, cx, cy = (float(v) for v in camera.intrinsics[0])
    vv, uu = torch.meshgrid(torch.arange(h, device=dev, dtype=dt) + 0.5, torch.arange(w, device=dev, dtype=dt) + 0.5,
                            indexing="ij")
    ray = torch.stack([(uu - cx) / fx, (vv - cy) / fy, torch.ones_like(uu)], -1)  # (H, W, 3), z-component 1
    points = z[..., None] * ray
    inv = torch.where(z > 0, 1 / z.clamp_min(1e-12), torch.zeros_like(z))
    limit = math.sqrt(max_stretch ** 2 - 1)

    def derivative(axis: int, focal: float) -> tuple[Tensor, Tensor]:
        pad = F.pad(z[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        ipad = F.pad(inv[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        if axis == 1:  # along u (x)
            nxt, prv, inxt, iprv = pad[:, 1:-1, 2:], pad[:, 1:-1, :-2], ipad[:, 1:-1, 2:], ipad[:, 1:-1, :-2]
        else:
            nxt, prv, inxt, iprv = pad[:, 2:, 1:-1], pad[:, :-2, 1:-1], ipad[:, 2:, 1:-1], ipad[:, :-2, 1:-1]
        fwd, bwd = nxt - z, z - prv
        # a neighbour is on the same surface when known and its inverse depth jumps less than the tolerance
        jump_f = (inxt - inv).abs() / inv.clamp_min(1e-12)
        jump_b = (inv - iprv).abs() / inv.clamp_min(1e-12)
        ok_f = (nxt > 0) & (jump_f <= edge_tolerance)
        ok_b = (prv > 0) & (jump_b <= edge_tolerance)
        use_f = ok_f & (~ok_b | (jump_f <= jump_b))
        dz = torch.where(use_f, fwd, torch.where(ok_b, bwd, torch.zeros_like(z)))
        # slope clamp: |z_u| ≤ limit · z / f keeps |∂P/∂u| within max_stretch footprints on the optical axis
        bound = limit * z / focal
        dz = torch.maximum(torch.minimum(dz, bound), -bound)
        return dz, ~(ok_f | ok_b)

    zu, cut_u = derivative(1, fx)
    zv, cut_v = derivative(0, fy)
    zero = torch.zeros_like(z)
    du = zu[..., None] * ray + torch.stack([z / fx, zero, zero], -1)
    dv = zv[..., None] * ray + torch.stack([zero, z / fy, zero], -1)
    cut = (cut_u | cut_v) & (z > 0)
    return points, du, dv, cut


def _frames_from_axes(du: Tensor, dv: Tensor, thickness: float) -> tuple[Tensor, Tensor]:
    """Rotation ``(N, 3, 3)`` (columns: the principal axes) and standard deviations ``(N, 3)`` of the
    covariances ``du duᵀ + dv dvᵀ + (thickness · sqrt(|du × dv|))² n nᵀ`` (``n`` the unit normal): the
    in-plane part is a 2×2 symmetric eigenproblem in the basis ``(du/|du|, n × du/|du|)``, solved in closed
    form."""
    normal = torch.linalg.cross(du, dv)
    area = normal.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    n = normal / area
    e1 = F.normalize(du, dim=-1)
    e2 = torch.linalg.cross(n, e1)
    x, y = (dv * e1).sum(-1), (dv * e2).sum(-1)
    a, b, c = (du * du).sum(-1) + x * x, x * y, y * y  # [[a, b], [b, c]] in (e1, e2)
    theta = 0.5 * torch.atan2(2 * b, a - c)
    cos, sin = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    mid, half = (a + c) / 2, torch.sqrt(((a - c) / 2) ** 2 + b * b)
    axis1, axis2 = cos * e1 + sin * e2, cos * e2 - sin * e1
    rot = torch.stack([axis1, axis2, n], -1)  # det +1: axis1 × axis2 = e1 × e2 = n
    std = torch.stack([(mid + half).sqrt(), (mid - half).clamp_min(0).sqrt(), thickness * area[:, 0].sqrt()], -1)
    return rot, std


def _rotmat_to_quat_batch(r: Tensor) -> Tensor:
    """``(N, 3, 3)`` rotations → ``(N, 4)`` unit ``wxyz`` quaternions (the branch-free largest-component form)."""
    m00, m11, m22 = r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]
    cands = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    k = cands.argmax(-1)
    s = cands.gather(-1, k[:, None])[:, 0].clamp_min(1e-12).sqrt() * 2  # 4 · the largest component
    w = torch.stack([s / 4, (r[:, 2, 1] - r[:, 1, 2]) / s, (r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 1, 0] - r[:, 0, 1]) / s], -1)
    x = torch.stack([(r[:, 2, 1] - r[:, 1, 2]) / s, s / 4, (r[:, 0, 1] + r[:, 1, 0]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s], -1)
    y = torch.stack([(r[:, 0, 2] - r[:, 2, 0]) / s, (r[:, 0, 1] + r[:, 1, 0]) / s, s / 4, (r[:, 1, 2] + r[:, 2, 1]) / s], -1)
    z = torch.stack([(r[:, 1, 0] - r[:, 0, 1]) / s, (r[:, 0, 2] + r[:, 2, 0]) / s, (r[:, 1, 2] + r[:, 2, 1]) / s, s / 4], -1)
    q = torch.stack([w, x, y, z], 1).gather(1, k[:, None, None].expand(-1, 1, 4))[:, 0]
    return F.normalize(q, dim=-1)


def input_view_weights(depth: Tensor, footprint: float, opacity: float, radius: int = 1) -> tuple[Tensor, Tensor]:
    """The compositing weights of a 3D photo at its own camera, as the rasterizer computes them: disc ``i``
    projects to its pixel centre as a round Gaussian of variance ``footprint² + EPS2D`` (pixels²); each pixel
    composites the discs of its ``(2·radius+1)²`` neighbourhood front to back by camera z (ties by index).

    Returns ``offsets (K, 2)`` (dy, dx of each neighbour) and ``weights (K, H, W)``: pixel ``p`` renders
    ``Σ_k weights[k, p] · colour[p + offsets[k]]`` (neighbours outside the image or of unknown depth weigh 0).
    Discs beyond ``radius`` are left out (two pixels away a disc of the default footprint has an alpha of
    about 1 %: the model matches the rasterizer to about 54 dB)."""
    offsets, weights = _input_view_weights(depth[:1], footprint, opacity, radius)
    return offsets, weights[:, 0]


def _input_view_weights(z: Tensor, footprint: float, opacity: float, radius: int = 1) -> tuple[Tensor, Tensor]:
    """:func:`input_view_weights` of ``B`` depth maps ``z (B, H, W)``: ``offsets (K, 2)``, ``weights (K, B, H, W)``."""
    b, h, w = z.shape
    var = footprint ** 2 + EPS2D
    offs = [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    big = torch.finfo(z.dtype).max
    zp = F.pad(z[:, None], (radius,) * 4, value=0.0)[:, 0]
    idx = torch.arange(h * w, device=z.device, dtype=z.dtype).reshape(h, w)
    ip = F.pad(idx[None, None], (radius,) * 4, value=-1.0)[0, 0]
    zs, alphas, order = [], [], []
    for dy, dx in offs:
        zn = zp[:, radius + dy: radius + dy + h, radius + dx: radius + dx + w]
        a = min(0.999, opacity * math.exp(-0.5 * (dy * dy + dx * dx) / var))
        a = a if a >= 1 / 255 else 0.0
        alphas.append(torch.where(zn > 0, torch.full_like(zn, a), torch.zeros_like(zn)))
        zs.append(torch.where(zn > 0, zn, torch.full_like(zn, big)))
        order.append(ip[radius + dy: radius + dy + h, radius + dx: radius + dx + w].expand(b, h, w))
    zs, alphas, order = torch.stack(zs), torch.stack(alphas), torch.stack(order)
    # front to back: by z, ties by the Gaussian's index (pixel order: the rasterizer's stable sort)
    perm = _lexsort(zs, order)
    a_sorted = alphas.gather(0, perm)
    t = torch.cumprod(torch.cat([torch.ones_like(a_sorted[:1]), 1 - a_sorted[:-1]]), 0)
    weights = torch.zeros_like(a_sorted).scatter_(0, perm, a_sorted * t)
    return torch.tensor(offs, device=z.device), weights


def _lexsort(primary: Tensor, secondary: Tensor) -> Tensor:
    """Indices sorting along dim 0 by ``primary`` then ``secondary``."""
    p2 = torch.argsort(secondary, dim=0, stable=True)
    return p2.gather(0, torch.argsort(primary.gather(0, p2), dim=0, stable=True))


def composite(colors: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
    """``(3, H, W)`` rendered from per-pixel disc colours ``(3, H, W)`` with :func:`input_view_weights`."""
    return _composite(colors[None], offsets, weights[:, None])[0]


def _composite(colors: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
    """:func:`composite` of ``B`` images: ``colors (B, 3, H, W)``, ``weights (K, B, H, W)`` → ``(B, 3, H, W)``."""
    b, _, h, w = colors.shape
    k = int(round(math.sqrt(len(offsets))))
    cols = F.unfold(colors, k, padding=k // 2).reshape(b, 3, k * k, h * w)  # neighbours in the offsets' order
    return (cols * weights.permute(1, 0, 2, 3).reshape(b, 1, k * k, h * w)).sum(2).reshape(b, 3, h, w)


def composite_transpose(residual: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
    """The adjoint of :func:`composite`: ``out[q] = Σ_k weights[k, q − offsets[k]] · residual[q − offsets[k]]``."""
    return _composite_transpose(residual[None], offsets, weights[:, None])[0]


def _composite_transpose(residual: Tensor, offsets: Tensor, weights: Tensor) -> Tensor:
    """:func:`composite_transpose` of ``B`` images (shapes as :func:`_composite`)."""
    b, _, h, w = residual.shape
    k = int(round(math.sqrt(len(offsets))))
    wk = weights.permute(1, 0, 2, 3).reshape(b, 1, k * k, h * w)
    cols = (residual.reshape(b, 3, 1, h * w) * wk).reshape(b, 3 * k * k, h * w)
    return F.fold(cols, (h, w), k, padding=k // 2)


def solve_colors(image: Tensor, offsets: Tensor, weights: Tensor, iterations: int, free: Tensor | None = None
                 ) -> Tensor:
    """Disc colours ``(3, H, W)`` whose composite (:func:`composite`) approaches ``image``: ``iterations`` of
    conjugate gradients on the least-squares problem (CGLS) from the image itself, then kept in [0, 1] (the
    rasterizer clips a colour below 0; one above 1 would ring in other views). Only the pixels of ``free``
    ``(H, W)`` (default all) change."""
    return _solve_colors(image[None], offsets, weights[:, None], iterations, None if free is None else free[None])[0]


def _solve_colors(image: Tensor, offsets: Tensor, weights: Tensor, iterations: int, free: Tensor | None) -> Tensor:
    """:func:`solve_colors` of ``B`` images ``(B, 3, H, W)`` at once (``weights (K, B, H, W)``, ``free (B, H, W)``):
    each image's own step sizes, and an image whose gradient vanishes stops there, as it would alone. No
    host-device sync inside."""
    m = torch.ones_like(image[:, :1]) if free is None else free.to(image.dtype)[:, None]
    norm = lambda x: (x.double() * x.double()).sum((1, 2, 3))  # noqa: E731 (per image, in float64)
    c = image.clone()
    res = image - _composite(c, offsets, weights)
    s = _composite_transpose(res, offsets, weights) * m
    p, gamma = s, norm(s)
    live = gamma > 1e-20
    for _ in range(iterations):
        q = _composite(p, offsets, weights)
        alpha = torch.where(live, gamma / norm(q).clamp_min(1e-30), torch.zeros_like(gamma))
        a4 = alpha.to(image.dtype)[:, None, None, None]
        c = c + a4 * p
        res = res - a4 * q
        s = _composite_transpose(res, offsets, weights) * m
        new = norm(s)
        beta = torch.where(live, new / gamma.clamp_min(1e-300), torch.zeros_like(new))
        p = torch.where(live[:, None, None, None], s + beta.to(image.dtype)[:, None, None, None] * p, p)
        gamma = torch.where(live, new, gamma)
        live = live & (gamma > 1e-20)
    return c.clamp(0, 1)


def sky_depth(depth: Tensor, far_ratio: float = 20.0, quantile: float = 0.1) -> float:
    """Where the pixels of unknown depth (the sky) go: ``far_ratio`` × the ``quantile`` of the known depths,
    the distance beyond which the teacher drops depths as sky (:func:`lyra3d.pipelines.teacher.drop_far`),
    and never nearer than the farthest known depth."""
    valid = depth[(depth > 0) & torch.isfinite(depth)].float()
    if valid.numel() == 0:
        raise InputError("depth has no positive finite value to place the sky from")
    near = torch.quantile(valid[:: max(1, valid.numel() // 100_000)], quantile)
    return max(float(far_ratio * near), float(valid.max()))


def photo_gaussians(image: Tensor, depth: Tensor, camera: Cameras, settings: PhotoSettings | None = None,
                    sky_depth: float | None = None) -> Gaussians:
    """The input as Gaussians: one flat disc per pixel (per ``settings.stride`` block) of known depth, in world
    space (module docstring). (One image of :func:`photo_gaussians_batch`.)

    Args:
        image: ``(3, H, W)`` in [0, 1].
        depth: ``(1, H, W)`` z-depth, 0 where unknown.
        camera: the input camera (one, of the image's size).
        settings: :class:`PhotoSettings` (default: its defaults).
        sky_depth: pixels of unknown depth (the sky the teacher leaves out of its cache) become discs facing
            the camera at this depth; ``None`` leaves them out.
    """
    _check_inputs(image, depth, camera)
    return photo_gaussians_batch(image[None], depth[None], camera, settings,
                                 None if sky_depth is None else [sky_depth])[0]


def photo_gaussians_batch(images: Tensor, depths: Tensor, camera: Cameras, settings: PhotoSettings | None = None,
                          sky_depths: list[float] | None = None) -> list[Gaussians]:
    """:func:`photo_gaussians` of ``B`` images ``(B, 3, H, W)`` with z-depths ``(B, 1, H, W)``, all seen by
    ``camera`` (one), image ``i``'s sky at ``sky_depths[i]``: every step runs once for the batch (the colour
    solve with each image's own step sizes); image ``i``'s Gaussians are those of its own call to float
    tolerance."""
    s = (settings or PhotoSettings()).validate()
    for image, depth in zip(images, depths):
        _check_inputs(image, depth, camera)
    b = images.shape[0]
    img, d, cam = block_image(images.float(), depths.float(), camera.to(dtype=torch.float32), s.stride)
    if sky_depths is not None:
        if len(sky_depths) != b or not all(x > 0 for x in sky_depths):
            raise InputError(f"sky depths must be {b} values > 0, got {sky_depths!r}")
        sky = torch.tensor([float(x) for x in sky_depths], device=d.device, dtype=d.dtype)[:, None, None, None]
        d = torch.where(d <= 0, sky.expand_as(d), d)
    points, du, dv, _ = _surface_tangents(d[:, 0], cam, s.edge_tolerance, s.max_stretch)
    colors = img
    if s.sharpen:
        offsets, weights = _input_view_weights(d[:, 0], s.footprint, s.opacity)
        # a pixel just behind an occlusion edge is partly covered by the nearer discs at the input camera; a
        # colour solved to undo that would show as a bright or dark outline from other cameras: keep its own
        free = depth_edges(d, s.edge_tolerance)[:, 0] == 0 if s.freeze_edges else None
        colors = _solve_colors(img, offsets, weights, s.sharpen, free)
    keep = (d[:, 0] > 0).reshape(-1)
    du = (du * s.footprint).reshape(-1, 3)[keep]
    dv = (dv * s.footprint).reshape(-1, 3)[keep]
    rot_c, std = _frames_from_axes(du, dv, s.thickness)
    c2w = cam.camera_to_world[0].to(points)
    means = points.reshape(-1, 3)[keep] @ c2w[:3, :3].T + c2w[:3, 3]
    rot = c2w[:3, :3] @ rot_c
    rgb = colors.permute(0, 2, 3, 1).reshape(-1, 3)[keep]
    n = means.shape[0]
    every = Gaussians(means, torch.log(std.clamp_min(1e-9)), _rotmat_to_quat_batch(rot),
                      torch.full((n,), math.log(s.opacity / (1 - s.opacity)), device=means.device),
                      rgb_to_sh(rgb)[:, None, :])
    counts = keep.reshape(b, -1).sum(1).tolist()
    ends = [sum(counts[:i + 1]) for i in range(b)]
    return [every[slice(e - c, e)] for c, e in zip(counts, ends)]


def visible_surface_mask(gaussians: Gaussians, depth: Tensor, camera: Cameras, tolerance: float = 0.1) -> Tensor:
    """``(N,)`` True for Gaussians whose centre the input ``camera`` sees in front of, or within ``tolerance``
    (relative) behind, the surface of ``depth (1, H, W)`` at the pixel it projects to (0 = unknown depth:
    nothing is known there, so nothing is flagged). Gaussians behind the camera or outside the image are
    never flagged."""
    if len(gaussians) == 0:
        return torch.zeros(0, dtype=torch.bool, device=gaussians.device)
    dt = gaussians.means.dtype
    w2c = camera.world_to_camera[0].to(gaussians.device, dt)
    p = gaussians.means @ w2c[:3, :3].T + w2c[:3, 3]
    fx, fy, cx, cy = camera.intrinsics[0].to(gaussians.device, dt).unbind()
    z = p[:, 2]
    zs = z.clamp_min(1e-9)
    u = torch.floor(fx * p[:, 0] / zs + cx).long()
    v = torch.floor(fy * p[:, 1] / zs + cy).long()
    h, w = depth.shape[-2:]
    inside = (z > 0) & (u >= 0) & (v >= 0) & (u < w) & (v < h)
    surface = depth[0].to(gaussians.device, dt)[v.clamp(0, h - 1), u.clamp(0, w - 1)]
    return inside & (surface > 0) & (z < surface * (1 + tolerance))


def fuse(photo: Gaussians, decoded: Gaussians, depth: Tensor, camera: Cameras, tolerance: float = 0.1
         ) -> tuple[Gaussians, int]:
    """The 3D photo plus the decoder's Gaussians that do not lie in front of or on the surface the input sees
    (:func:`visible_surface_mask` with ``depth``, the depth the photo was made with, sky included). Returns
    the fused Gaussians (the photo's first) and how many decoder Gaussians were dropped."""
    drop = visible_surface_mask(decoded, depth, camera, tolerance)
    kept = decoded[~drop]
    photo = photo.to(kept.means.device, kept.means.dtype)
    return Gaussians.cat([photo, kept]), int(drop.sum())
