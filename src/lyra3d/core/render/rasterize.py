"""Render 3D Gaussians: ``rasterize(gaussians, cameras, ...) → rgb, depth, alpha``.

One functional entry point, :func:`rasterize`, with three backends that give the same images:

- ``"torch"``: the pure-PyTorch reference (CPU or CUDA, differentiable w.r.t. every Gaussian parameter). It
  expands Gaussian × pixel pairs inside each Gaussian's pixel box, sorts them by (pixel, depth rank), and
  composites with an exclusive segmented cumulative sum of ``log(1 - alpha)``.
- ``"cpu"``: a compiled forward-only C kernel (``csrc/rasterize.c``), built on first use with the machine's
  compiler (:mod:`lyra3d.core.render.ckernel`): the same projection and SH colours as the reference, written in C, a
  radix sort by depth, 16×16 tiles with depth-ordered lists, per-pixel front-to-back compositing with early
  termination, OpenMP over Gaussians and tiles. For inference: 10-20× faster than the reference on CPU.
- ``"gsplat"``: gsplat's CUDA rasterizer (``pip install lyra3d[cuda]``), differentiable.
- ``"auto"``: gsplat for CUDA tensors when it is installed; else ``cpu`` when no gradient is needed and the
  kernel builds; else ``torch``.

The semantics are gsplat's classic 3DGS rasterization (gsplat ≥ 1.5, ``rasterize_mode="classic"``):

- EWA splatting: camera-space covariance ``W R S Sᵀ Rᵀ Wᵀ`` projected with the Jacobian of the pinhole
  projection, whose ``x/z`` and ``y/z`` are clamped to the image's field of view plus 30 % on each side
  (``-(cx/fx + 0.3·tan_fovx) ≤ x/z ≤ (W - cx)/fx + 0.3·tan_fovx`` with ``tan_fovx = W / (2 fx)``; the same
  for y); the projected mean itself is not clamped.
- A ``0.3`` px² low-pass dilation of the 2D covariance (``eps2d``); no opacity compensation.
- Gaussians with camera z < ``near`` (or > ``far``), a non-positive 2D determinant, opacity < 1/255, or a
  pixel box outside the image are culled.
- ``alpha = min(0.999, opacity · exp(-½ dᵀ Σ₂ᴰ⁻¹ d))`` at pixel centres (``+0.5``); pairs with alpha < 1/255
  are skipped; front-to-back by camera z; a pixel stops *before* the Gaussian that would take its
  transmittance to ≤ 1e-4.
- Each Gaussian touches the pixels of its box ``mean ± extend·sqrt(diag Σ₂ᴰ)`` with
  ``extend = min(3.33, sqrt(2 ln(255·opacity)))`` (gsplat's opacity-aware box): that box holds every pixel
  where alpha ≥ 1/255, so the result is the same as evaluating all pixels.
- Colours: SH of degree ≤ 3 evaluated for the unit direction ``mean - camera centre``, ``+ 0.5``, clamped
  at 0 from below (gsplat's ``spherical_harmonics`` and the INRIA basis and constants).
- ``depth`` is the expected camera z, ``Σ wᵢ zᵢ / Σ wᵢ`` (0 where nothing was hit; gsplat's ``"ED"``), and
  ``alpha = Σ wᵢ = 1 - T``; the background is blended as ``rgb + (1 - alpha) · background``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import SH_C0, Gaussians, quat_to_rotmat, sh_basis
from lyra3d.errors import InputError

BACKENDS = ("auto", "torch", "cpu", "gsplat")
ALPHA_MIN = 1.0 / 255.0  # pairs below this alpha are skipped
ALPHA_MAX = 0.999  # gsplat's clamp of a single Gaussian's alpha
T_MIN = 1e-4  # a pixel stops before its transmittance would reach this
_LOG_T_MIN = math.log(T_MIN)
EPS2D = 0.3  # low-pass dilation of the 2D covariance, in pixels²
BOX_EXTEND_MAX = 3.33  # gsplat's cap on the box half-size, in standard deviations
_BOX_SLACK = 1e-3  # px; widens boxes so rounding never drops a pixel with alpha >= 1/255
# Gaussian × pixel pairs per chunk of the torch backend. Small chunks on CPU let later chunks skip pixels that
# are already opaque (and bound memory); large ones on GPUs keep the number of launches and syncs down.
PAIR_BUDGET = {"cpu": 1 << 19, "cuda": 1 << 23}


@dataclass
class RenderOutput:
    """Rendered images of ``B`` cameras.

    Attributes:
        rgb: ``(B, 3, H, W)`` colour, background blended in.
        depth: ``(B, 1, H, W)`` expected camera z-depth ``Σ w·z / Σ w`` (0 where ``alpha`` is 0).
        alpha: ``(B, 1, H, W)`` accumulated opacity.
        backend: the backend that rendered it (``"torch"``, ``"cpu"`` or ``"gsplat"``).
    """

    rgb: Tensor
    depth: Tensor
    alpha: Tensor
    backend: str = ""


# -- colours ------------------------------------------------------------------------------------------------
def view_dependent_rgb(sh: Tensor, dirs: Tensor, degree: int) -> Tensor:
    """Colour ``(N, 3)`` of SH coefficients ``sh (N, K, 3)`` seen along ``dirs (N, 3)`` (any length).

    Uses the first ``(degree+1)²`` coefficients; ``max(SH(dir) + 0.5, 0)`` as gsplat and INRIA 3DGS do.
    """
    k = (degree + 1) ** 2
    basis = sh_basis(F.normalize(dirs, dim=-1), degree)  # (N, k)
    return torch.clamp_min((basis[:, :, None] * sh[:, :k]).sum(1) + 0.5, 0.0)


# -- projection (the reference; csrc/rasterize.c does the same in C) -----------------------------------------
@dataclass
class _Projected:
    """The Gaussians one camera sees, sorted front to back (M of them)."""

    index: Tensor  # (M,) int64 index into the input Gaussians
    means2d: Tensor  # (M, 2) pixel coordinates
    conics: Tensor  # (M, 3) inverse 2D covariance (a, b, c), b off-diagonal
    depths: Tensor  # (M,) camera z
    opacities: Tensor  # (M,) in (0, 1)
    colors: Tensor  # (M, 3)
    boxes: Tensor  # (M, 4) int64 x0, y0, x1, y1: inclusive pixel ranges inside the image


def _project(g: Gaussians, w2c: Tensor, intrinsics: Tensor, width: int, height: int, sh_degree: int,
             near: float, far: float, eps2d: float = EPS2D, offset2d: Tensor | None = None,
             radii: Tensor | None = None) -> _Projected:
    """EWA-project Gaussians into one camera (``w2c (4, 4)``, ``intrinsics (4,)``), cull and depth-sort them.

    ``offset2d (N, 2)``: zeros added to the projected means, so that its gradient is the loss's gradient with
    respect to them (what gsplat's densification reads); ``radii (N, 2)``: filled with each Gaussian's pixel
    box half-size, 0 where culled (gsplat's ``radii``)."""
    rot, trans = w2c[:3, :3], w2c[:3, 3]
    fx, fy, cx, cy = intrinsics.unbind()
    means_c = g.means @ rot.T + trans
    opacity = torch.sigmoid(g.opacities)
    with torch.no_grad():
        in_range = (means_c[:, 2] >= near) & (means_c[:, 2] <= far) & (opacity >= ALPHA_MIN)
    # Everything is computed for all Gaussians (culled ones with a harmless z = 1) and gathered once at the end.
    x, y = means_c[:, 0], means_c[:, 1]
    z = torch.where(in_range, means_c[:, 2], torch.ones_like(means_c[:, 2]))
    rz = 1.0 / z
    # Jacobian of (fx x/z + cx, fy y/z + cy) at a point whose x/z, y/z are clamped to 1.3× the image's FOV:
    #   J = [[fx/z, 0, -fx tx/z²], [0, fy/z, -fy ty/z²]]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    tx = z * torch.clamp(x * rz, min=-(cx / fx + 0.3 * tan_fovx), max=(width - cx) / fx + 0.3 * tan_fovx)
    ty = z * torch.clamp(y * rz, min=-(cy / fy + 0.3 * tan_fovy), max=(height - cy) / fy + 0.3 * tan_fovy)
    # Σ₂ᴰ = J W R S Sᵀ Rᵀ Wᵀ Jᵀ = H Hᵀ with H = J (W R S), a 2×3 matrix per Gaussian
    rs = quat_to_rotmat(g.quats) * torch.exp(g.scales)[:, None, :]
    axes_t = rs.transpose(1, 2) @ rot.T  # (N, 3, 3), the transpose of W R S
    h0 = (fx * rz)[:, None] * axes_t[..., 0] - (fx * tx * rz * rz)[:, None] * axes_t[..., 2]
    h1 = (fy * rz)[:, None] * axes_t[..., 1] - (fy * ty * rz * rz)[:, None] * axes_t[..., 2]
    a = (h0 * h0).sum(-1) + eps2d
    b = (h0 * h1).sum(-1)
    c = (h1 * h1).sum(-1) + eps2d
    det = a * c - b * b
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], -1)
    if offset2d is not None:
        means2d = means2d + offset2d

    with torch.no_grad():
        extend = torch.sqrt(2.0 * torch.log(opacity * 255.0).clamp_min(0.0)).clamp(max=BOX_EXTEND_MAX)
        ex = extend * torch.sqrt(a) + _BOX_SLACK
        ey = extend * torch.sqrt(c) + _BOX_SLACK
        mx, my = means2d[:, 0], means2d[:, 1]
        # pixel i is inside when |i + 0.5 - mean| <= e
        x0 = torch.ceil(mx - ex - 0.5).clamp(0, width)
        x1 = torch.floor(mx + ex - 0.5).clamp(-1, width - 1)
        y0 = torch.ceil(my - ey - 0.5).clamp(0, height)
        y1 = torch.floor(my + ey - 0.5).clamp(-1, height - 1)
        visible = in_range & (det > 0) & (x0 <= x1) & (y0 <= y1) & torch.isfinite(means2d).all(-1)
        index = visible.nonzero().squeeze(1)
        index = index[torch.argsort(z.detach()[index], stable=True)]
        boxes = torch.stack([x0, y0, x1, y1], -1)[index].long()
        if radii is not None:
            radii.copy_(torch.where(visible[:, None], torch.stack([torch.ceil(ex), torch.ceil(ey)], -1),
                                    torch.zeros_like(radii)))

    det = torch.where(visible, det, torch.ones_like(det))
    centre = -rot.T @ trans
    if sh_degree == 0:
        colors = torch.clamp_min(SH_C0 * g.sh[:, 0] + 0.5, 0.0)
    else:
        colors = view_dependent_rgb(g.sh, g.means - centre, sh_degree)
    packed = torch.cat([means2d, (c / det)[:, None], (-b / det)[:, None], (a / det)[:, None], z[:, None],
                        opacity[:, None], colors], -1)[index]
    return _Projected(index, packed[:, 0:2], packed[:, 2:5], packed[:, 5], packed[:, 6], packed[:, 7:10], boxes)


# -- torch backend --------------------------------------------------------------------------------------------
def _composite_torch(p: _Projected, width: int, height: int, pair_budget: int, base: Tensor | None = None,
                     images: int = 1) -> tuple[Tensor, Tensor, Tensor]:
    """Front-to-back compositing of projected Gaussians → colour ``(HW, 3)``, ``Σ w z (HW,)``, ``Σ w (HW,)``.

    ``base (M,)``: each Gaussian's first pixel index in a stack of ``images`` images (``i · H · W`` for a Gaussian of
    image ``i``; outputs ``(images · HW, ·)``): several scenes composited in one pass, each Gaussian only into
    its own image (the Gaussians of each image front to back among themselves)."""
    dev, dt = p.means2d.device, p.means2d.dtype
    hw = width * height * images
    rgb = torch.zeros(hw, 3, device=dev, dtype=dt)
    depth_sum = torch.zeros(hw, device=dev, dtype=dt)
    weight_sum = torch.zeros(hw, device=dev, dtype=dt)
    log_t = torch.zeros(hw, device=dev, dtype=torch.float64)  # log transmittance carried across chunks
    m = p.index.shape[0]
    if m == 0:
        return rgb, depth_sum, weight_sum

    x0, y0, x1, y1 = p.boxes.unbind(-1)
    box_w = x1 - x0 + 1
    n_pairs = box_w * (y1 - y0 + 1)
    ends = torch.cumsum(n_pairs, 0)
    starts = ends - n_pairs
    ends_host = ends.cpu()
    # per-Gaussian attributes packed so that each pair needs one gather of each pack
    base = torch.zeros_like(x0) if base is None else base
    geo = torch.stack([x0, y0, box_w, starts, base], -1)  # (M, 5) int64
    splat = torch.cat([p.means2d, p.conics, p.opacities[:, None]], -1)  # (M, 6): mx, my, a, b, c, opacity
    shade = torch.cat([p.colors, p.depths[:, None]], -1)  # (M, 4): r, g, b, z
    lo = 0
    while lo < m:
        # the next chunk: Gaussians lo..hi-1 (front to back) with about pair_budget pairs
        base = int(starts[lo])
        hi = int(torch.searchsorted(ends_host, base + pair_budget, right=True))
        hi = min(max(hi, lo + 1), m)
        total = int(ends_host[hi - 1]) - base
        gid = torch.repeat_interleave(torch.arange(lo, hi, device=dev), n_pairs[lo:hi], output_size=total)
        gx0, gy0, gbw, gstart, gbase = geo.index_select(0, gid).unbind(-1)
        local = torch.arange(base, base + total, device=dev) - gstart  # pair index inside its box
        row = torch.div(local, gbw, rounding_mode="floor")
        px, py = gx0 + local - row * gbw, gy0 + row

        s = splat.index_select(0, gid)
        dx = s[:, 0] - (px.to(dt) + 0.5)
        dy = s[:, 1] - (py.to(dt) + 0.5)
        sigma = 0.5 * (s[:, 2] * dx * dx + s[:, 4] * dy * dy) + s[:, 3] * dx * dy
        alpha = torch.clamp(s[:, 5] * torch.exp(-sigma), max=ALPHA_MAX)
        with torch.no_grad():
            pix = py * width + px + gbase
            # skip pairs too faint, and pairs at pixels that earlier chunks already made opaque
            ok = ((sigma >= 0) & (alpha >= ALPHA_MIN) & (log_t.index_select(0, pix) > _LOG_T_MIN)).nonzero()[:, 0]
            # sort by (pixel, depth rank): a unique key, so the depth order inside each pixel is kept
            span = hi - lo
            key, order = torch.sort(pix[ok] * span + (gid[ok] - lo))
            pix = torch.div(key, span, rounding_mode="floor")
            gid = key - pix * span + lo
            keep_idx = ok[order]
        alpha = alpha.index_select(0, keep_idx)
        log_keep = torch.log1p(-alpha.double())
        csum = torch.cumsum(log_keep, 0)
        excl = csum - log_keep  # exclusive running sum over the whole chunk
        with torch.no_grad():
            is_first = torch.ones_like(pix, dtype=torch.bool)
            is_first[1:] = pix[1:] != pix[:-1]
            arange = torch.arange(pix.shape[0], device=dev)
            seg_first = torch.cummax(torch.where(is_first, arange, torch.zeros_like(arange)), 0).values
        # log T before each pair: carried from earlier chunks + the exclusive sum inside its pixel
        log_t_before = log_t.index_select(0, pix) + excl - excl.index_select(0, seg_first)
        t_before = torch.exp(log_t_before)
        with torch.no_grad():
            alive = t_before * (1.0 - alpha.double()) > T_MIN  # exclusive stop, as gsplat
        w = (alpha.double() * t_before * alive).to(dt)

        sh = shade.index_select(0, gid)
        rgb = rgb.index_add(0, pix, w[:, None] * sh[:, :3])
        depth_sum = depth_sum.index_add(0, pix, w * sh[:, 3])
        weight_sum = weight_sum.index_add(0, pix, w)
        log_t = log_t.index_add(0, pix, log_keep)
        lo = hi
    return rgb, depth_sum, weight_sum


def _render_torch(g: Gaussians, cams: Cameras, sh_degree: int, near: float, far: float, eps2d: float,
                  pair_budget: int, info: dict | None = None) -> tuple[Tensor, Tensor, Tensor]:
    w, h = cams.width, cams.height
    rgbs, depths, alphas = [], [], []
    offsets = radii = None
    if info is not None:  # gsplat's names and shapes (:func:`rasterize`'s ``info``)
        offsets = torch.zeros(len(cams), len(g), 2, device=g.device, dtype=g.means.dtype, requires_grad=True)
        radii = torch.zeros(len(cams), len(g), 2, device=g.device, dtype=torch.int32)
        info.update(means2d=offsets, radii=radii, width=w, height=h, n_cameras=len(cams), gaussian_ids=None)
    for i in range(len(cams)):
        p = _project(g, cams.world_to_camera[i], cams.intrinsics[i], w, h, sh_degree, near, far, eps2d,
                     None if offsets is None else offsets[i], None if radii is None else radii[i])
        rgb, dsum, wsum = _composite_torch(p, w, h, pair_budget)
        rgbs.append(rgb.T.reshape(3, h, w))
        depths.append((dsum / wsum.clamp_min(1e-10)).reshape(1, h, w))
        alphas.append(wsum.reshape(1, h, w))
    return torch.stack(rgbs), torch.stack(depths), torch.stack(alphas)


# -- cpu backend (compiled kernel) -----------------------------------------------------------------------------
def cpu_kernel_available() -> bool:
    """Whether the compiled CPU kernel builds and loads here."""
    from lyra3d.core.render import ckernel as _ckernel

    return _ckernel.load() is not None


@torch.no_grad()
def _render_cpu(g: Gaussians, cams: Cameras, sh_degree: int, near: float, far: float, eps2d: float
                ) -> tuple[Tensor, Tensor, Tensor]:
    """The compiled kernel: projection, sorting, tiling and compositing all in C (csrc/rasterize.c)."""
    from lyra3d.core.render import ckernel as _ckernel

    lib = _ckernel.load()
    if lib is None:
        raise InputError(f"backend='cpu' is unavailable ({_ckernel.unavailable_reason()}); "
                         "install a C compiler or use backend='torch'")
    if len(g) >= 2**31:
        raise InputError(f"backend='cpu' takes fewer than 2^31 Gaussians, got {len(g)}; use backend='torch'")
    f32 = [t.detach().to(torch.float32).contiguous() for t in (g.means, g.scales, g.quats, g.opacities, g.sh)]
    w2c = cams.world_to_camera.detach().to(torch.float32).contiguous()
    intr = cams.intrinsics.detach().to(torch.float32).contiguous()
    w, h = cams.width, cams.height
    n_threads = torch.get_num_threads()
    rgb = torch.empty(len(cams), 3, h, w)
    depth = torch.empty(len(cams), 1, h, w)
    alpha = torch.empty(len(cams), 1, h, w)
    for i in range(len(cams)):
        status = lib.lyra3d_render(len(g), *[t.data_ptr() for t in f32], g.sh.shape[1], sh_degree,
                                   w2c[i].data_ptr(), intr[i].data_ptr(), w, h, near, min(far, 3e38), eps2d,
                                   n_threads, rgb[i].data_ptr(), depth[i].data_ptr(), alpha[i].data_ptr())
        if status == -1:
            raise MemoryError(f"the CPU rasterizer ran out of memory at {w}x{h} with {len(g)} Gaussians")
        if status != 0:
            raise RuntimeError(f"the CPU rasterizer rejected its arguments (status {status})")
    return rgb, depth, alpha


# -- gsplat backend ---------------------------------------------------------------------------------------------
def _import_gsplat():
    try:
        import gsplat
    except (ImportError, OSError) as e:
        raise InputError(f"backend='gsplat' needs gsplat ({e}); install it with `pip install lyra3d[cuda]` "
                         "or use backend='torch'") from None
    return gsplat


@functools.lru_cache(maxsize=1)
def _gsplat_importable() -> bool:
    try:
        _import_gsplat()
    except InputError:
        return False
    return True


def _render_gsplat(g: Gaussians, cams: Cameras, sh_degree: int, near: float, far: float, eps2d: float,
                   info: dict | None = None) -> tuple[Tensor, Tensor, Tensor]:
    gsplat = _import_gsplat()
    if g.means.device.type != "cuda":
        raise InputError(f"backend='gsplat' needs CUDA tensors, got {g.means.device}; move the Gaussians and "
                         "cameras with .to('cuda') or use backend='torch'")
    g = g.to(dtype=torch.float32)
    cams = cams.to(dtype=torch.float32)
    k = (sh_degree + 1) ** 2
    colors, alphas, meta = gsplat.rasterization(
        means=g.means, quats=g.quats, scales=torch.exp(g.scales), opacities=torch.sigmoid(g.opacities),
        colors=g.sh[:, :k].contiguous(), viewmats=cams.world_to_camera, Ks=cams.K,
        width=cams.width, height=cams.height, near_plane=near, far_plane=far, eps2d=eps2d,
        sh_degree=sh_degree, render_mode="RGB+ED", rasterize_mode="classic", packed=info is None)
    if info is not None:
        info.update(meta)
    colors = colors.permute(0, 3, 1, 2)
    return colors[:, :3], colors[:, 3:4], alphas.permute(0, 3, 1, 2)


# -- entry point ----------------------------------------------------------------------------------------------
def _needs_grad(g: Gaussians, cams: Cameras) -> bool:
    if not torch.is_grad_enabled():
        return False
    tensors = [g.means, g.scales, g.quats, g.opacities, g.sh, cams.world_to_camera, cams.intrinsics]
    return any(t.requires_grad for t in tensors)


def _choose_backend(backend: str, g: Gaussians, cams: Cameras) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown render backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if g.means.device.type == "cuda":
        return "gsplat" if _gsplat_importable() else "torch"
    if g.means.device.type == "cpu" and not _needs_grad(g, cams) and cpu_kernel_available():
        return "cpu"
    return "torch"


def _check(g: Gaussians, cams: Cameras, background, sh_degree: int | None, near: float, far: float
           ) -> tuple[int, Tensor | None]:
    if not isinstance(g, Gaussians):
        raise InputError(f"rasterize needs a Gaussians object, got {type(g).__name__}")
    if not isinstance(cams, Cameras):
        raise InputError(f"rasterize needs a Cameras object, got {type(cams).__name__}")
    if cams.device != g.device:
        raise InputError(f"the cameras are on {cams.device} but the Gaussians on {g.device}; "
                         f"move one of them with .to(device)")
    if not g.means.is_floating_point():
        raise InputError(f"Gaussian parameters must be floating point, got {g.means.dtype}")
    if sh_degree is None:
        sh_degree = g.sh_degree
    if not 0 <= int(sh_degree) <= g.sh_degree:
        raise InputError(f"sh_degree={sh_degree} but the Gaussians carry SH up to degree {g.sh_degree}; "
                         f"pass sh_degree between 0 and {g.sh_degree}")
    if not (near > 0 and far > near):
        raise InputError(f"need 0 < near < far, got near={near}, far={far}")
    # One device sync for all the finiteness checks.
    checks = {name: torch.isfinite(getattr(g, name)).all()
              for name in ("means", "scales", "quats", "opacities", "sh")}
    checks["cameras"] = torch.isfinite(cams.world_to_camera).all() & torch.isfinite(cams.intrinsics).all()
    ok = torch.stack(list(checks.values())).cpu()
    if not bool(ok.all()):
        bad = [name for name, good in zip(checks, ok.tolist()) if not good]
        what = ", ".join(bad)
        raise InputError(f"NaN or infinite values in {what}; remove those Gaussians (Gaussians[mask]) "
                         "or fix whatever produced them")
    if background is not None:
        background = torch.as_tensor(background, dtype=g.means.dtype, device=g.device)
        if background.ndim == 1:
            background = background[None]
        if background.shape not in {(1, 3), (len(cams), 3)}:
            raise InputError(f"background must be (3,) or ({len(cams)}, 3), got {tuple(background.shape)}")
        background = background.expand(len(cams), 3)
    return int(sh_degree), background


def rasterize(gaussians: Gaussians, cameras: Cameras, width: int | None = None, height: int | None = None,
              backend: str = "auto", background: Tensor | None = None, sh_degree: int | None = None,
              near: float = 0.01, far: float = 1e10, eps2d: float = EPS2D,
              pair_budget: int | None = None, info: dict | None = None) -> RenderOutput:
    """Render Gaussians into each camera (gsplat's classic 3DGS rasterization; see the module docstring).

    Args:
        gaussians: ``N`` Gaussians (``means (N, 3)``, log-``scales (N, 3)``, ``quats (N, 4)`` wxyz,
            ``opacities (N,)`` logits, ``sh (N, K, 3)``); ``times`` is ignored.
        cameras: ``B`` cameras (``world_to_camera (B, 4, 4)`` OpenCV, ``intrinsics (B, 4)``) on the
            Gaussians' device.
        width, height: output size; default the cameras' own. A different size scales the intrinsics
            (``cameras.resized``).
        backend: ``"auto"``, ``"torch"``, ``"cpu"`` (forward only) or ``"gsplat"`` (CUDA).
        background: ``(3,)`` or ``(B, 3)`` colour behind the Gaussians; default black.
        sh_degree: SH degree to evaluate, ``0..gaussians.sh_degree``; default all the Gaussians carry.
        near, far: Gaussians whose camera z is outside ``[near, far]`` are culled.
        eps2d: low-pass dilation added to the 2D covariance's diagonal (pixels²).
        pair_budget: Gaussian × pixel pairs per chunk of the ``torch`` backend (bounds its memory; default
            ``PAIR_BUDGET`` for the device).
        info: a dict filled with what gsplat's densification strategies read (``gsplat.strategy``):
            ``means2d (B, N, 2)`` (a tensor whose gradient after ``backward`` is the loss's gradient with
            respect to the projected means), ``radii (B, N, 2)`` (pixel box half-sizes, 0 where culled),
            ``width``, ``height``, ``n_cameras``, ``gaussian_ids`` (``None``: not packed). ``torch`` and
            ``gsplat`` backends only (``gsplat``: its own unpacked ``info``).

    Returns:
        :class:`RenderOutput` with ``rgb (B, 3, H, W)``, ``depth (B, 1, H, W)``, ``alpha (B, 1, H, W)``.
        Differentiable w.r.t. all Gaussian parameters for the ``torch`` and ``gsplat`` backends.
    """
    sh_degree, bg = _check(gaussians, cameras, background, sh_degree, near, far)
    width = cameras.width if width is None else int(width)
    height = cameras.height if height is None else int(height)
    if width <= 0 or height <= 0:
        raise InputError(f"image size must be positive, got {width}x{height}")
    if (width, height) != (cameras.width, cameras.height):
        cameras = cameras.resized(width, height)
    cameras = cameras.to(dtype=gaussians.means.dtype)
    name = _choose_backend(backend, gaussians, cameras)
    if info is not None and name == "cpu" and backend == "auto":
        name = "torch"  # the compiled kernel fills no info

    if info is not None and name == "cpu":
        raise InputError("backend='cpu' is forward-only and fills no info; use backend='torch' or 'gsplat'")
    if name == "gsplat":
        rgb, depth, alpha = _render_gsplat(gaussians, cameras, sh_degree, near, far, eps2d, info)
        rgb, depth, alpha = (t.to(gaussians.means.dtype) for t in (rgb, depth, alpha))
    elif name == "cpu":
        if gaussians.device.type != "cpu":
            raise InputError(f"backend='cpu' needs CPU tensors, got {gaussians.device}; "
                             "use backend='gsplat' or 'torch', or move the inputs with .to('cpu')")
        if _needs_grad(gaussians, cameras):
            raise InputError("backend='cpu' is forward-only but gradients were requested; "
                             "use backend='torch' (or render under torch.no_grad())")
        rgb, depth, alpha = _render_cpu(gaussians, cameras, sh_degree, near, far, eps2d)
        rgb, depth, alpha = (t.to(gaussians.means.dtype) for t in (rgb, depth, alpha))
    else:
        if pair_budget is None:
            pair_budget = PAIR_BUDGET.get(gaussians.device.type, PAIR_BUDGET["cuda"])
        rgb, depth, alpha = _render_torch(gaussians, cameras, sh_degree, near, far, eps2d,
                                          max(1, int(pair_budget)), info)
    if bg is not None:
        rgb = rgb + (1.0 - alpha) * bg[:, :, None, None]
    return RenderOutput(rgb, depth, alpha, name)


def rasterize_each(gaussians: list[Gaussians], cameras: Cameras, backend: str = "auto", near: float = 0.01,
                   far: float = 1e10, eps2d: float = EPS2D, pair_budget: int | None = None) -> RenderOutput:
    """Scene ``i``'s Gaussians ``gaussians[i]`` rendered by its camera ``cameras[i]`` (one per scene, one size), as
    :func:`rasterize` renders each (all SH degrees the Gaussians carry, black background), stacked ``(B, ...)``.
    With the ``torch`` backend all scenes are composited in one pass of chunks (each scene's Gaussians only into
    its own image), so a GPU without gsplat does not pay one chunk loop per scene; the images equal those of one
    call per scene to float tolerance (the transmittance carried between chunks sums in another grouping)."""
    if len(gaussians) != len(cameras) or not gaussians:
        raise InputError(f"one camera per scene: {len(gaussians)} scenes, {len(cameras)} cameras")
    name = _choose_backend(backend, gaussians[0], cameras.to(gaussians[0].device))
    if name != "torch" or len(gaussians) == 1:
        outs = [rasterize(g, cameras[i:i + 1].to(g.device), backend=name, near=near, far=far, eps2d=eps2d,
                          pair_budget=pair_budget) for i, g in enumerate(gaussians)]
        return RenderOutput(*(torch.cat([getattr(o, k) for o in outs]) for k in ("rgb", "depth", "alpha")), name)
    w, h = cameras.width, cameras.height
    parts, bases = [], []
    for i, g in enumerate(gaussians):
        cam = cameras[i:i + 1].to(g.device)
        degree, _ = _check(g, cam, None, None, near, far)
        cam = cam.to(dtype=g.means.dtype)
        p = _project(g, cam.world_to_camera[0], cam.intrinsics[0], w, h, degree, near, far, eps2d)
        parts.append(p)
        bases.append(torch.full_like(p.index, i * w * h))
    dt = gaussians[0].means.dtype
    merged = _Projected(torch.cat([p.index for p in parts]), *(torch.cat([getattr(p, k).to(dt) for p in parts])
                        for k in ("means2d", "conics", "depths", "opacities", "colors")),
                        torch.cat([p.boxes for p in parts]))
    if pair_budget is None:
        pair_budget = PAIR_BUDGET.get(merged.means2d.device.type, PAIR_BUDGET["cuda"])
    rgb, dsum, wsum = _composite_torch(merged, w, h, max(1, int(pair_budget)), torch.cat(bases), len(gaussians))
    b = len(gaussians)
    return RenderOutput(rgb.reshape(b, h, w, 3).permute(0, 3, 1, 2),
                        (dsum / wsum.clamp_min(1e-10)).reshape(b, 1, h, w), wsum.reshape(b, 1, h, w), "torch")


def available_backends(device: str | torch.device = "cpu") -> list[str]:
    """Backends that can run on ``device`` here (``"auto"`` excluded)."""
    device = torch.device(device)
    out = ["torch"]
    if device.type == "cpu" and cpu_kernel_available():
        out.append("cpu")
    if device.type == "cuda" and _gsplat_importable():
        out.append("gsplat")
    return out
