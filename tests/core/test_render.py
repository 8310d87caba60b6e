"""lyra3d.core.render on CPU: the torch reference against independent formulas, and the compiled kernel against it."""

import math

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import Cameras, look_at
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.render import ckernel as _ckernel
from lyra3d.core.render import cpu_kernel_available, rasterize, view_dependent_rgb
from lyra3d.errors import InputError

LOGIT = lambda p: math.log(p / (1 - p))  # noqa: E731


def gaussians_from(means, scales, quats, opacities, rgb, dtype=torch.float32) -> Gaussians:
    t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype)  # noqa: E731
    return Gaussians.from_activated(t(means), t(scales), t(quats), t(opacities), t(rgb))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


# -- an independent evaluation of one splat (numpy, float64) -------------------------------------------------
def rotation_from_quat_axis_angle(q) -> np.ndarray:
    """Rotation of a wxyz quaternion via its axis and angle (Rodrigues), not via the quaternion matrix."""
    q = np.asarray(q, np.float64) / np.linalg.norm(q)
    angle = 2 * math.acos(np.clip(q[0], -1, 1))
    v = q[1:]
    if np.linalg.norm(v) < 1e-12:
        return np.eye(3)
    k = v / np.linalg.norm(v)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) * math.cos(angle) + math.sin(angle) * kx + (1 - math.cos(angle)) * np.outer(k, k)


def analytic_splat(mean, scales, quat, opacity, w2c, intr, width, height):
    """alpha (H, W) and camera z of one Gaussian: EWA with the FOV-clamped Jacobian, +0.3 px² dilation."""
    w2c = np.asarray(w2c, np.float64)
    fx, fy, cx, cy = intr
    x, y, z = w2c[:3, :3] @ np.asarray(mean, np.float64) + w2c[:3, 3]
    rot = rotation_from_quat_axis_angle(quat)
    cov_c = w2c[:3, :3] @ rot @ np.diag(np.asarray(scales, np.float64) ** 2) @ rot.T @ w2c[:3, :3].T
    lim_x = (cx / fx + 0.3 * width / (2 * fx), (width - cx) / fx + 0.3 * width / (2 * fx))
    lim_y = (cy / fy + 0.3 * height / (2 * fy), (height - cy) / fy + 0.3 * height / (2 * fy))
    xc = np.clip(x / z, -lim_x[0], lim_x[1]) * z
    yc = np.clip(y / z, -lim_y[0], lim_y[1]) * z
    jac = np.array([[fx / z, 0, -fx * xc / z**2], [0, fy / z, -fy * yc / z**2]])
    cov2d = jac @ cov_c @ jac.T + 0.3 * np.eye(2)
    u, v = fx * x / z + cx, fy * y / z + cy
    py, px = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    d = np.stack([u - px, v - py], -1)
    maha = np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov2d), d)
    alpha = np.minimum(0.999, opacity * np.exp(-0.5 * maha))
    alpha[alpha < 1 / 255] = 0
    return alpha, z


SPLAT_CASES = {
    "isotropic": dict(mean=[0.1, -0.05, 3.0], scales=[0.1, 0.1, 0.1], quat=[1, 0, 0, 0], opacity=0.8,
                      w2c=np.eye(4)),
    "anisotropic_rotated": dict(mean=[0.3, 0.2, 0.5], scales=[0.25, 0.04, 0.1], quat=[0.8, 0.3, -0.4, 0.5],
                                opacity=0.95,
                                w2c=look_at(torch.tensor([0.5, -0.4, -2.5]), torch.tensor([0.2, 0.1, 0.6]))[0].numpy()),
    # centre outside the image, beyond the Jacobian's clamp (x/z = 0.7 > 0.624): only its tail shows
    "offscreen_clamped": dict(mean=[2.1, 0.3, 3.0], scales=[0.5, 0.3, 0.4], quat=[0.9, 0.1, 0.2, 0.3],
                              opacity=0.9, w2c=np.eye(4)),
}


@pytest.mark.parametrize("case", list(SPLAT_CASES))
@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_single_gaussian_matches_analytic_splat(case, backend):
    if backend == "cpu" and not cpu_kernel_available():
        pytest.skip(_ckernel.unavailable_reason())
    c = SPLAT_CASES[case]
    width, height, intr = 48, 40, (50.0, 52.0, 24.0, 19.0)
    colour = np.array([0.9, 0.4, 0.1])
    g = gaussians_from([c["mean"]], [c["scales"]], [c["quat"]], [c["opacity"]], [colour])
    cams = Cameras(torch.tensor(c["w2c"], dtype=torch.float32), torch.tensor(intr), width, height)
    out = rasterize(g, cams, backend=backend)
    alpha, z = analytic_splat(c["mean"], c["scales"], c["quat"], c["opacity"], c["w2c"], intr, width, height)
    assert alpha.max() > 0.05 and (alpha > 0).sum() > 20  # the case really draws something
    assert np.abs(out.alpha[0, 0].numpy() - alpha).max() < 1e-4
    assert np.abs(out.rgb[0].numpy() - colour[:, None, None] * alpha).max() < 1e-4
    hit = alpha > 0
    assert np.abs(out.depth[0, 0].numpy()[hit] - z).max() < 1e-4 * z
    assert (out.depth[0, 0].numpy()[~hit] == 0).all()
    assert out.rgb.shape == (1, 3, height, width) and out.depth.shape == out.alpha.shape == (1, 1, height, width)


# -- compositing ----------------------------------------------------------------------------------------------
def camera(width=64, height=48, f=60.0) -> Cameras:
    # principal point on a pixel centre, so a Gaussian on the axis sits exactly on pixel (W/2-1, H/2-1)
    return Cameras(torch.eye(4), torch.tensor([f, f, width / 2 - 0.5, height / 2 - 0.5]), width, height)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_occlusion_front_to_back(backend):
    if backend == "cpu" and not cpu_kernel_available():
        pytest.skip(_ckernel.unavailable_reason())
    cams = camera()
    cy, cx = 23, 31
    # given back to front: the renderer must sort by depth
    g = gaussians_from([[0, 0, 4.0], [0, 0, 2.0]], [[0.6] * 3, [0.3] * 3], [[1, 0, 0, 0]] * 2, [0.8, 0.9],
                       [[0, 1, 0], [1, 0, 0]])
    out = rasterize(g, cams, backend=backend)
    rgb = out.rgb[0, :, cy, cx]
    assert rgb.tolist() == pytest.approx([0.9, 0.1 * 0.8, 0.0], abs=1e-5)  # red in front of green
    assert float(out.alpha[0, 0, cy, cx]) == pytest.approx(1 - 0.1 * 0.2, abs=1e-5)
    assert float(out.depth[0, 0, cy, cx]) == pytest.approx((0.9 * 2 + 0.08 * 4) / 0.98, rel=1e-5)
    # the order of the input does not matter
    again = rasterize(g[torch.tensor([1, 0])], cams, backend=backend)
    assert torch.allclose(again.rgb, out.rgb, atol=1e-6)

    # gsplat's clamp at 0.999 and exclusive stop: after a 0.999 Gaussian, T = 1e-3; the next would take T to
    # 1e-6 <= 1e-4, so the pixel stops before it and the green one adds nothing.
    g = gaussians_from([[0, 0, 4.0], [0, 0, 2.0]], [[0.6] * 3, [0.3] * 3], [[1, 0, 0, 0]] * 2, [0.9, 0.99999],
                       [[0, 1, 0], [1, 0, 0]])
    out = rasterize(g, cams, backend=backend)
    assert out.rgb[0, :, cy, cx].tolist() == pytest.approx([0.999, 0.0, 0.0], abs=1e-6)
    assert float(out.alpha[0, 0, cy, cx]) == pytest.approx(0.999, abs=1e-6)
    assert float(out.depth[0, 0, cy, cx]) == pytest.approx(2.0, rel=1e-6)


def test_background_size_near_plane_and_empty():
    cams = camera(32, 24)
    g = gaussians_from([[0, 0, 2.0], [0.1, 0, 0.005], [0, 0, -1.0]], [[0.05] * 3] * 3, [[1, 0, 0, 0]] * 3,
                       [0.7] * 3, [[1, 1, 1]] * 3)
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = rasterize(g, cams, background=bg, backend="torch")
    only_first = rasterize(g[:1], cams, background=bg, backend="torch")
    # the Gaussian in front of the near plane (z = 0.005 < 0.01) and the one behind the camera are culled
    assert torch.allclose(out.rgb, only_first.rgb) and torch.allclose(out.alpha, only_first.alpha)
    assert torch.allclose(out.rgb, rasterize(g[:1], cams, backend="torch").rgb + (1 - out.alpha) * bg[:, None, None])
    assert out.rgb[0, :, 0, 0].tolist() == pytest.approx(bg.tolist())  # corner: background only
    # nothing to draw: background everywhere, zero depth and alpha
    empty = rasterize(g[2:], cams, background=bg, backend="torch")
    assert (empty.alpha == 0).all() and (empty.depth == 0).all()
    assert torch.allclose(empty.rgb, bg[None, :, None, None].expand(1, 3, 24, 32))
    # another size scales the intrinsics
    big = rasterize(g[:1], cams, width=64, height=48, backend="torch")
    assert big.rgb.shape == (1, 3, 48, 64)
    assert torch.allclose(big.rgb, rasterize(g[:1], cams.resized(64, 48), backend="torch").rgb)


def random_scene(n: int, sh_degree: int = 0, seed: int = 0, dtype=torch.float32) -> Gaussians:
    """Gaussians in front of the camera (a few behind it / outside the view), log-scales of ~1-10 px."""
    gen = torch.Generator().manual_seed(seed)
    z = 1.5 + 6 * torch.rand(n, generator=gen)
    xy = (torch.rand(n, 2, generator=gen) - 0.5) * 1.6 * z[:, None]
    means = torch.cat([xy, z[:, None]], 1)
    means[: n // 50, 2] *= -1  # behind the camera
    sh = 0.3 * torch.randn(n, (sh_degree + 1) ** 2, 3, generator=gen)
    sh[:, 0] = 1.5 * torch.randn(n, 3, generator=gen)
    return Gaussians(means, math.log(0.03) + 0.7 * torch.randn(n, 3, generator=gen), torch.randn(n, 4, generator=gen),
                     1.0 + 2.0 * torch.randn(n, generator=gen), sh).to(dtype=dtype)


# -- gradients ------------------------------------------------------------------------------------------------
def test_gradients_flow_to_every_parameter():
    g = random_scene(200, sh_degree=2, seed=1)
    params = [g.means, g.scales, g.quats, g.opacities, g.sh]
    for p in params:
        p.requires_grad_(True)
    cams = Cameras(torch.eye(4), torch.tensor([40.0, 40.0, 24.0, 16.0]), 48, 32)
    out = rasterize(g, cams, sh_degree=2)
    assert out.backend == "torch"  # auto picks the differentiable reference when gradients are needed
    weights = torch.rand(out.rgb.shape, generator=torch.Generator().manual_seed(0))
    (out.rgb * weights).sum().backward()
    for name, p in zip(["means", "scales", "quats", "opacities", "sh"], params):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert (p.grad.abs().sum(-1) > 0 if p.grad.ndim > 1 else p.grad.abs() > 0).sum() > 20, name


def test_gradcheck_tiny_scene_float64():
    g = gaussians_from([[0.05, -0.02, 2.0], [-0.1, 0.06, 2.6], [0.02, 0.08, 3.1]],
                       [[0.08, 0.05, 0.06], [0.1, 0.07, 0.05], [0.09, 0.09, 0.12]],
                       [[0.9, 0.1, 0.2, 0.3], [0.7, -0.2, 0.1, 0.4], [1, 0, 0.3, 0]], [0.6, 0.7, 0.5],
                       [[0.9, 0.2, 0.1], [0.1, 0.8, 0.3], [0.2, 0.3, 0.9]], dtype=torch.float64)
    sh = torch.cat([g.sh, 0.2 * torch.randn(3, 3, 3, generator=torch.Generator().manual_seed(0),
                                            dtype=torch.float64)], 1)  # degree 1
    cams = Cameras(look_at(torch.tensor([0.3, -0.2, -0.5]), torch.tensor([0.0, 0.0, 2.5])),
                   torch.tensor([14.0, 14.0, 5.0, 4.0]), 10, 8).to(dtype=torch.float64)

    def render(means, scales, quats, opacities, sh):
        out = rasterize(Gaussians(means, scales, quats, opacities, sh), cams, backend="torch")
        return torch.cat([out.rgb.flatten(), out.depth.flatten(), out.alpha.flatten()])

    inputs = [t.detach().clone().requires_grad_(True) for t in (g.means, g.scales, g.quats, g.opacities, sh)]
    assert render(*inputs)[-80:].max() > 0.3  # visible
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


# -- colours --------------------------------------------------------------------------------------------------
def real_sh_reference(dirs: np.ndarray, degree: int) -> np.ndarray:
    """Real SH (with the Condon-Shortley phase, as 3DGS uses), from associated Legendre polynomials."""
    d = dirs / np.linalg.norm(dirs, axis=-1, keepdims=True)
    ct = d[:, 2]
    phi = np.arctan2(d[:, 1], d[:, 0])

    def legendre(l, m, x):  # P_l^m with the Condon-Shortley phase, m >= 0
        pmm = (-1) ** m * math.prod(range(1, 2 * m, 2)) * (1 - x * x) ** (m / 2)
        if l == m:
            return pmm
        pm1 = x * (2 * m + 1) * pmm
        for ll in range(m + 2, l + 1):
            pmm, pm1 = pm1, ((2 * ll - 1) * x * pm1 - (ll + m - 1) * pmm) / (ll - m)
        return pm1

    out = np.zeros((len(d), (degree + 1) ** 2))
    for l in range(degree + 1):
        for m in range(-l, l + 1):
            k = math.sqrt((2 * l + 1) / (4 * math.pi) * math.factorial(l - abs(m)) / math.factorial(l + abs(m)))
            p = legendre(l, abs(m), ct)
            if m > 0:
                y = math.sqrt(2) * k * np.cos(m * phi) * p
            elif m < 0:
                y = math.sqrt(2) * k * np.sin(-m * phi) * p
            else:
                y = k * p
            out[:, l * l + l + m] = y
    return out


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_view_dependent_rgb_matches_real_sh(degree):
    gen = torch.Generator().manual_seed(degree)
    dirs = torch.randn(200, 3, generator=gen, dtype=torch.float64) * 3
    sh = torch.randn(200, 16, 3, generator=gen, dtype=torch.float64)
    want = np.maximum(np.einsum("nk,nkc->nc", real_sh_reference(dirs.numpy(), degree),
                                sh[:, : (degree + 1) ** 2].numpy()) + 0.5, 0)
    got = view_dependent_rgb(sh, dirs, degree).numpy()
    assert (want == 0).any() and (want > 0).any()  # the clamp is exercised
    assert np.abs(got - want).max() < 1e-10


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_sh_view_dependence_in_renders(backend):
    if backend == "cpu" and not cpu_kernel_available():
        pytest.skip(_ckernel.unavailable_reason())
    mean = torch.tensor([0.3, -0.2, 4.0])
    eyes = torch.tensor([[0.0, 0.0, 0.0], [2.5, -1.0, 1.0], [-2.0, 1.5, 2.0]])
    cams = Cameras(look_at(eyes, mean.expand(3, 3)), torch.tensor([20.0, 20.0, 4.5, 4.5]), 9, 9)
    gen = torch.Generator().manual_seed(3)
    sh = 0.6 * torch.randn(1, 16, 3, generator=gen)
    g = Gaussians(mean[None], torch.full((1, 3), math.log(0.1)), torch.tensor([[1.0, 0, 0, 0]]),
                  torch.tensor([LOGIT(0.9)]), sh)
    colours = []
    for degree in (1, 2, 3):
        out = rasterize(g, cams, sh_degree=degree, backend=backend)
        # the mean projects onto pixel (4, 4)'s centre, where alpha is the opacity
        assert out.alpha[:, 0, 4, 4].tolist() == pytest.approx([0.9] * 3, abs=1e-5)
        got = (out.rgb[:, :, 4, 4] / out.alpha[:, :, 4, 4]).numpy()
        basis = real_sh_reference((mean - eyes).numpy(), degree)
        want = np.maximum(basis @ sh[0, : (degree + 1) ** 2].double().numpy() + 0.5, 0)
        assert np.abs(got - want).max() < 1e-4
        colours.append(got)
    assert np.abs(colours[2][0] - colours[2][1]).max() > 0.05  # the colour depends on the view
    assert np.abs(colours[0] - colours[2]).max() > 0.05  # and on the degree used


# -- the compiled kernel against the reference ---------------------------------------------------------------
def test_cpu_kernel_builds_here():
    if _ckernel.find_compiler() is None:
        pytest.skip("no C compiler on this machine")
    assert cpu_kernel_available(), _ckernel.unavailable_reason()


def test_cpu_kernel_matches_torch_reference():
    if not cpu_kernel_available():
        pytest.skip(_ckernel.unavailable_reason())
    g = random_scene(5000, sh_degree=3, seed=2)
    eyes = torch.tensor([[0.0, 0.0, 0.0], [0.6, -0.3, -0.5]])
    cams = Cameras(look_at(eyes, torch.tensor([[0.0, 0.0, 4.0]] * 2)), torch.tensor([70.0, 72.0, 60.0, 44.0]), 120, 90)
    bg = torch.tensor([[0.0, 0.0, 0.0], [0.3, 0.5, 0.7]])
    ref = rasterize(g, cams, backend="torch", background=bg)
    fast = rasterize(g, cams, backend="cpu", background=bg)
    assert fast.backend == "cpu" and ref.backend == "torch"
    assert ref.alpha.mean() > 0.5  # a busy scene
    assert psnr(fast.rgb, ref.rgb) >= 50
    assert (fast.alpha - ref.alpha).abs().max() < 1e-3
    hit = ref.alpha > 0.5
    assert ((fast.depth - ref.depth).abs()[hit] / ref.depth[hit]).max() < 1e-3
    with torch.no_grad():
        assert rasterize(g, cams, background=bg).backend == "cpu"  # auto, no gradient needed


def test_torch_chunks_carry_transmittance():
    g = random_scene(800, seed=4)
    cams = Cameras(torch.eye(4), torch.tensor([40.0, 40.0, 24.0, 16.0]), 48, 32)
    whole = rasterize(g, cams, backend="torch")
    chunked = rasterize(g, cams, backend="torch", pair_budget=500)
    for name in ("rgb", "depth", "alpha"):
        assert torch.allclose(getattr(whole, name), getattr(chunked, name), atol=1e-5), name


def test_scenes_rendered_together_are_each_scene_rendered_alone():
    """issue 25: :func:`rasterize_each` composites several scenes (each its own camera and Gaussian count) in one
    pass of torch chunks; each image is that scene's own render to float tolerance, in chunks or whole; other
    backends go scene by scene."""
    from lyra3d.core.render.rasterize import rasterize_each

    scenes = [random_scene(n, seed=s) for n, s in ((600, 5), (900, 6), (300, 7))]
    base = Cameras(torch.eye(4), torch.tensor([40.0, 40.0, 24.0, 16.0]), 48, 32)
    w2c = torch.eye(4).repeat(3, 1, 1)
    w2c[1, 0, 3], w2c[2, 1, 3] = 0.3, -0.2
    cams = Cameras(w2c, base.intrinsics.repeat(3, 1), 48, 32)
    alone = [rasterize(g, cams[i:i + 1], backend="torch") for i, g in enumerate(scenes)]
    for budget in (None, 700):
        together = rasterize_each(scenes, cams, backend="torch", pair_budget=budget)
        assert together.rgb.shape == (3, 3, 32, 48) and together.backend == "torch"
        for i, one in enumerate(alone):
            for name in ("rgb", "depth", "alpha"):
                assert torch.allclose(getattr(together, name)[i], getattr(one, name)[0], atol=1e-5), (i, name)
    assert not torch.allclose(together.rgb[0], together.rgb[1])
    if cpu_kernel_available():
        kernel = rasterize_each(scenes, cams, backend="cpu")
        assert kernel.backend == "cpu" and psnr(kernel.rgb[2], alone[2].rgb[0]) > 40
    with pytest.raises(InputError, match="one camera per scene"):
        rasterize_each(scenes[:2], cams)


def test_auto_falls_back_to_torch_without_the_kernel(monkeypatch):
    monkeypatch.setenv("LYRA3D_NO_CKERNEL", "1")
    _ckernel.reset()
    try:
        g = random_scene(50)
        cams = camera(16, 12)
        with torch.no_grad():
            assert rasterize(g, cams).backend == "torch"
        with pytest.raises(InputError, match="backend='cpu' is unavailable"):
            rasterize(g, cams, backend="cpu")
    finally:
        monkeypatch.delenv("LYRA3D_NO_CKERNEL")
        _ckernel.reset()


# -- bad inputs -----------------------------------------------------------------------------------------------
def one_line(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


def test_bad_inputs_raise_input_error():
    g = random_scene(20)
    cams = camera(16, 12)
    with pytest.raises(InputError, match="cameras are on meta but the Gaussians on cpu") as e:
        rasterize(g, cams.to("meta"))
    assert ".to(device)" in one_line(e)
    bad = random_scene(20)
    bad.means[3, 1] = float("nan")
    with pytest.raises(InputError, match="NaN or infinite values in means") as e:
        rasterize(bad, cams)
    one_line(e)
    with pytest.raises(InputError, match="unknown render backend 'opengl'") as e:
        rasterize(g, cams, backend="opengl")
    assert "torch" in one_line(e)
    with pytest.raises(InputError, match="sh_degree=2"):
        rasterize(g, cams, sh_degree=2)
    with pytest.raises(InputError, match="background must be"):
        rasterize(g, cams, background=torch.zeros(4))
    with pytest.raises(InputError, match="near < far"):
        rasterize(g, cams, near=0.0)
    with pytest.raises(InputError, match="Cameras object"):
        rasterize(g, cams.K)
    if cpu_kernel_available():
        g.means.requires_grad_(True)
        with pytest.raises(InputError, match="forward-only"):
            rasterize(g, cams, backend="cpu")


def test_gsplat_backend_needs_cuda_or_gsplat():
    with pytest.raises(InputError) as e:
        rasterize(random_scene(10), camera(16, 12), backend="gsplat")
    msg = one_line(e)
    assert "pip install lyra3d[cuda]" in msg or "needs CUDA tensors" in msg
