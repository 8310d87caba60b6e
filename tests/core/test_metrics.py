import math

import pytest
import torch

from lyra3d.core.metrics import depth_errors, lpips_unavailable_reason, psnr, ssim
from lyra3d.errors import InputError


def test_psnr_known_values_and_mask():
    a = torch.full((2, 3, 8, 8), 0.5)
    assert psnr(a, a + 0.1).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    b = a.clone()
    b[:, :, :4] += 0.5  # error only in the top half
    mask = torch.zeros(2, 1, 8, 8)
    mask[:, :, 4:] = 1
    assert psnr(a, b, mask).min() > 100  # masked out: no error seen
    assert psnr(a, b).tolist() == pytest.approx([10 * torch.log10(torch.tensor(8.0)).item()] * 2, abs=1e-4)
    with pytest.raises(InputError, match="differ in shape"):
        psnr(a, a[..., :4])


def test_ssim_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 11, 11, generator=g)
    y = (x + 0.2 * torch.rand(1, 1, 11, 11, generator=g)).clamp(0, 1)
    # One 11x11 window: SSIM is the Gaussian-weighted statistic at the centre.
    t = torch.arange(11.0) - 5
    w = torch.exp(-t**2 / (2 * 1.5**2))
    w = (w[:, None] * w[None]) / (w.sum() ** 2)
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy = (w * x * x).sum() - mx**2, (w * y * y).sum() - my**2
    cxy = (w * x * y).sum() - mx * my
    c1, c2 = 0.01**2, 0.03**2
    expected = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y).item() == pytest.approx(expected.item(), abs=1e-5)
    z = torch.rand(2, 3, 32, 32, generator=g)
    assert ssim(z, z).tolist() == pytest.approx([1.0, 1.0])
    noisy = (z + 0.5 * (torch.rand(2, 3, 32, 32, generator=g) - 0.5)).clamp(0, 1)
    assert (ssim(z, noisy) < 0.95).all() and (ssim(z, noisy) > 0.5).all()


def test_depth_errors_known_values():
    t = torch.tensor([1.0, 2.0, 4.0, 0.0])  # the 0 is invalid ground truth
    p = torch.tensor([1.1, 2.0, 2.5, 9.0])
    e = depth_errors(p, t)
    assert e["abs_rel"] == pytest.approx((0.1 + 0 + 0.375) / 3)
    assert e["delta1"] == pytest.approx(2 / 3)
    assert e["delta2"] == pytest.approx(2 / 3)  # 4 / 2.5 = 1.6 > 1.25**2
    assert e["delta3"] == pytest.approx(1.0)
    scaled = depth_errors(3 * t[:3], t[:3], align="median")
    assert scaled["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    affine = depth_errors(2 * t[:3] + 1, t[:3], align="scale_shift")
    assert affine["rmse"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(InputError, match="no valid depth"):
        depth_errors(p, torch.zeros(4))


def test_lpips_is_reported_as_unavailable_without_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("LYRA3D_LPIPS_DIR", str(tmp_path))
    reason = lpips_unavailable_reason()
    assert reason and ("not installed" in reason or str(tmp_path) in reason)


def test_mean_psnr_averages_images_and_pooled_psnr_pools_pixels():
    from lyra3d.core.metrics import mean_psnr, pooled_psnr

    target = torch.zeros(2, 3, 4, 4)
    pred = target.clone()
    pred[0] += 0.1  # image 0: MSE 0.01 → 20 dB; image 1: MSE 1e-4 → 40 dB
    pred[1] += 0.01
    assert mean_psnr(pred, target) == pytest.approx(30.0, abs=1e-4)
    mask = torch.zeros(2, 1, 4, 4)
    mask[0, :, 0, 0] = 1  # one pixel of image 0, all of image 1
    mask[1] = 1
    assert mean_psnr(pred, target, mask) == pytest.approx(30.0, abs=1e-4)  # each image over its own pixels
    pooled = -10 * math.log10((0.01 * 1 + 1e-4 * 16) / 17)  # all masked pixels together
    assert pooled_psnr(pred, target, mask) == pytest.approx(pooled, abs=1e-4)
    assert math.isnan(mean_psnr(pred, target, torch.zeros_like(mask)))
    assert math.isnan(pooled_psnr(pred, target, torch.zeros_like(mask)))
