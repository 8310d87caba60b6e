"""Image and depth quality metrics (docs/design.md §7).

All image metrics take tensors ``(..., 3, H, W)`` in [0, 1] and return one value per leading index (or a
scalar for a single image). An optional ``mask (..., 1, H, W)`` restricts PSNR and the depth errors to
valid pixels. LPIPS runs only when its backbone weights already lie on disk: nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from lyra3d.errors import InputError


def _check_pair(a: Tensor, b: Tensor) -> None:
    if a.shape != b.shape:
        raise InputError(f"images to compare differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.ndim < 3:
        raise InputError(f"images must be (..., C, H, W), got {tuple(a.shape)}")


def psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None, max_val: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB per image ``(...)``; with ``mask (..., 1, H, W)`` over masked pixels."""
    _check_pair(pred, target)
    se = (pred.float() - target.float()) ** 2
    if mask is None:
        mse = se.flatten(-3).mean(-1)
    else:
        m = mask.float().expand_as(se)
        mse = (se * m).flatten(-3).sum(-1) / m.flatten(-3).sum(-1).clamp_min(1)
    return 10 * torch.log10(max_val**2 / mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5, reduce: bool = True) -> Tensor:
    """Structural similarity (Wang et al. 2004; Gaussian window 11, σ 1.5, K1 0.01, K2 0.03, "valid" border).

    Returns the mean SSIM per image ``(...)``, or the SSIM map ``(..., C, H', W')`` with ``reduce=False``.
    Differentiable: ``1 - ssim`` is the D-SSIM loss.
    """
    _check_pair(pred, target)
    lead, (c, h, w) = pred.shape[:-3], pred.shape[-3:]
    if min(h, w) < window:
        raise InputError(f"images of {h}x{w} are smaller than the SSIM window ({window})")
    x, y = pred.reshape(-1, c, h, w).float(), target.reshape(-1, c, h, w).float()
    k = _gaussian_window(window, sigma, c, x.device, x.dtype)
    mu_x, mu_y = F.conv2d(x, k, groups=c), F.conv2d(y, k, groups=c)
    sxx = F.conv2d(x * x, k, groups=c) - mu_x**2
    syy = F.conv2d(y * y, k, groups=c) - mu_y**2
    sxy = F.conv2d(x * y, k, groups=c) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    if not reduce:
        return s.reshape(*lead, *s.shape[1:])
    return s.flatten(1).mean(-1).reshape(lead)


def depth_errors(pred: Tensor, target: Tensor, mask: Tensor | None = None,
                 align: str = "none") -> dict[str, float]:
    """Standard monocular-depth errors over valid pixels (target > 0 and finite, and ``mask``).

    Args:
        pred, target: z-depths of the same shape.
        align: ``"none"``, ``"median"`` (scale pred so its median matches the target's), or
            ``"scale_shift"`` (least-squares scale and shift).

    Returns:
        ``abs_rel``, ``sq_rel``, ``rmse``, ``delta1`` (share with max(p/t, t/p) < 1.25), ``delta2``, ``delta3``.
    """
    if pred.shape != target.shape:
        raise InputError(f"depth maps differ in shape: {tuple(pred.shape)} vs {tuple(target.shape)}")
    valid = torch.isfinite(target) & (target > 0) & torch.isfinite(pred)
    if mask is not None:
        valid &= mask.expand_as(target).bool()
    p, t = pred[valid].double(), target[valid].double()
    if t.numel() == 0:
        raise InputError("no valid depth pixels to compare (empty mask or no positive target depth)")
    if align == "median":
        p = p * (t.median() / p.median().clamp_min(1e-12))
    elif align == "scale_shift":
        a = torch.stack([p, torch.ones_like(p)], 1)
        sol = torch.linalg.lstsq(a, t[:, None]).solution
        p = (a @ sol)[:, 0]
    elif align != "none":
        raise InputError(f"unknown depth alignment {align!r}; use none, median or scale_shift")
    p = p.clamp_min(1e-6)
    ratio = torch.maximum(p / t, t / p)
    return {
        "abs_rel": float(((p - t).abs() / t).mean()),
        "sq_rel": float(((p - t) ** 2 / t).mean()),
        "rmse": float(((p - t) ** 2).mean().sqrt()),
        "delta1": float((ratio < 1.25).double().mean()),
        "delta2": float((ratio < 1.25**2).double().mean()),
        "delta3": float((ratio < 1.25**3).double().mean()),
    }


# -- LPIPS: only with weights already on disk ---------------------------------------------------------------
def lpips_hub_dir() -> Path:
    """The torch hub folder LPIPS's backbone is read from: ``$LYRA3D_LPIPS_DIR`` if set, else torch's own.
    The backbone file must lie in its ``checkpoints/`` subfolder, as torchvision keeps it."""
    d = os.environ.get("LYRA3D_LPIPS_DIR")
    return Path(d) if d else Path(torch.hub.get_dir())


def lpips_unavailable_reason(net: str = "vgg") -> str | None:
    """Why LPIPS cannot run here (``None`` when it can): the package or its backbone weights are missing.

    LPIPS needs the ``lpips`` package (its linear layers ship inside it) and the torchvision backbone weights
    already on disk, in the torch hub cache or in ``$LYRA3D_LPIPS_DIR``. Nothing is ever downloaded.
    """
    try:
        import lpips as _lpips  # noqa: F401
    except ImportError:
        return "the lpips package is not installed"
    backbone = {"vgg": "vgg16-397923af.pth", "alex": "alexnet-owt-7be5be79.pth"}.get(net)
    if backbone is None:
        return f"unknown LPIPS network {net!r}"
    path = lpips_hub_dir() / "checkpoints" / backbone
    if not path.is_file():
        return f"no {net} backbone weights on disk (looked for {path}; set LYRA3D_LPIPS_DIR to a torch hub folder)"
    return None


def lpips(pred: Tensor, target: Tensor, net: str = "vgg") -> Tensor:
    """LPIPS distance per image ``(...)``. Raises :class:`InputError` when it cannot run here; check
    :func:`lpips_unavailable_reason` first and report "LPIPS skipped: <reason>"."""
    reason = lpips_unavailable_reason(net)
    if reason:
        raise InputError(f"LPIPS unavailable: {reason}")
    import lpips as _lpips

    torch.hub.set_dir(str(lpips_hub_dir()))
    model = _lpips.LPIPS(net=net, verbose=False).to(pred.device).eval()
    with torch.no_grad():
        out = model(pred.reshape(-1, *pred.shape[-3:]) * 2 - 1, target.reshape(-1, *target.shape[-3:]) * 2 - 1)
    return out.reshape(pred.shape[:-3])


# -- measured --------------------------------------------------------------------------------------------------
def mean_psnr(pred: Tensor, target: Tensor, mask: Tensor | None = None) -> float:
    """The mean of the per-image PSNRs (dB) as a float; with ``mask``, each image over its own masked pixels
    (NaN when the mask is empty). Compare :func:`pooled_psnr`, which pools the masked pixels of all images."""
    if mask is not None and float(mask.sum()) == 0:
        return float("nan")
    return float(psnr(pred, target, mask).mean())


def pooled_psnr(pred: Tensor, target: Tensor, mask: Tensor) -> float:
    """One PSNR over the pixels of ``mask (..., 1, H, W)`` of all frames ``(..., 3, H, W)`` pooled (NaN when
    the mask is empty): frames where little or nothing moves weigh by their moving pixels."""
    m = mask.expand_as(pred).float()
    if float(m.sum()) == 0:
        return float("nan")
    mse = (((pred.float() - target.float()) ** 2) * m).sum() / m.sum()
    return float(-10 * torch.log10(mse.clamp_min(1e-12)))
