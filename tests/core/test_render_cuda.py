"""GPU parity: gsplat's CUDA rasterizer against lyra3d's PyTorch reference (needs CUDA and gsplat)."""

import math

import pytest
import torch

from lyra3d.core.cameras import Cameras, look_at
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.render import rasterize


def _gsplat_importable() -> bool:
    try:
        import gsplat  # noqa: F401
    except Exception:
        return False
    return True


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not _gsplat_importable(), reason="needs gsplat (pip install lyra3d[cuda])"),
]


def scene(n: int, seed: int = 0, sh_degree: int = 3) -> Gaussians:
    """n Gaussians spread through the view frustum at depths 1.5-9, 1-10 px, mixed opacities, SH degree 3."""
    gen = torch.Generator().manual_seed(seed)
    z = 1.5 + 7.5 * torch.rand(n, generator=gen)
    xy = (torch.rand(n, 2, generator=gen) - 0.5) * torch.tensor([1.9, 1.2]) * z[:, None]
    sh = 0.2 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen)
    sh[:, 0] = 1.2 * torch.randn(n, 3, generator=gen)
    return Gaussians(torch.cat([xy, z[:, None]], 1), math.log(0.02) + 0.6 * torch.randn(n, 3, generator=gen),
                     torch.randn(n, 4, generator=gen), 0.5 + 1.5 * torch.randn(n, generator=gen), sh).to("cuda")


def cameras(width: int = 448, height: int = 256) -> Cameras:
    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.4, -0.2, 0.3]])
    w2c = look_at(eyes, torch.tensor([[0.0, 0.0, 5.0]] * 2))
    k = torch.tensor([0.8 * width, 0.8 * width, width / 2, height / 2])
    return Cameras(w2c, k, width, height).to("cuda")


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a - b) ** 2).mean().clamp_min(1e-20)))


def test_auto_picks_gsplat_on_cuda():
    out = rasterize(scene(100), cameras(64, 48))
    assert out.backend == "gsplat" and out.rgb.is_cuda


def test_gsplat_matches_torch_backend_50k():
    g, cams = scene(50_000), cameras()
    bg = torch.tensor([0.1, 0.2, 0.3], device="cuda")
    with torch.no_grad():
        ref = rasterize(g, cams, backend="torch", background=bg)
        fast = rasterize(g, cams, backend="gsplat", background=bg)
    assert ref.alpha.mean() > 0.5  # a busy scene, not an empty image
    rgb_psnr = psnr(fast.rgb, ref.rgb)
    alpha_diff = (fast.alpha - ref.alpha).abs()
    hit = ref.alpha > 0.5
    depth_rel = ((fast.depth - ref.depth).abs() / ref.depth.clamp_min(1e-6))[hit]
    print(f"\n50k Gaussians at {cams.width}x{cams.height}: rgb PSNR {rgb_psnr:.1f} dB, "
          f"alpha max|diff| {float(alpha_diff.max()):.2e} mean {float(alpha_diff.mean()):.2e}, "
          f"depth (alpha>0.5) rel diff median {float(depth_rel.median()):.2e} max {float(depth_rel.max()):.2e}")
    assert rgb_psnr >= 40
    assert float(alpha_diff.mean()) < 1e-3
    assert float(depth_rel.median()) < 1e-3


def test_gsplat_and_torch_gradients_agree():
    base, cams = scene(5_000, seed=1), cameras(160, 96)
    weights = torch.rand(len(cams), 3, 96, 160, generator=torch.Generator().manual_seed(0)).to("cuda")
    grads = {}
    for backend in ("torch", "gsplat"):
        params = [t.detach().clone().requires_grad_(True)
                  for t in (base.means, base.scales, base.quats, base.opacities, base.sh)]
        out = rasterize(Gaussians(*params), cams, backend=backend)
        ((out.rgb * weights).sum() + 0.1 * out.depth.sum()).backward()
        grads[backend] = [p.grad.flatten() for p in params]
    report = {}
    for name, a, b in zip(("means", "scales", "quats", "opacities", "sh"), grads["torch"], grads["gsplat"]):
        report[name] = float(torch.nn.functional.cosine_similarity(a, b, dim=0))
    print("\ngradient cosine similarity gsplat vs torch:", {k: round(v, 5) for k, v in report.items()})
    assert report["means"] > 0.99
    assert min(report.values()) > 0.95
