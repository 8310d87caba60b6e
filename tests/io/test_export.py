"""Export: PLY, .splat (32-byte records), USD/USDZ (ParticleField3DGaussianSplat + Points fallback), bad inputs."""

from __future__ import annotations

import struct
import sys

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from lyra3d.core.cameras import Cameras, default_camera, look_at
from lyra3d.core.gaussians import SH_C0, Gaussians, load_ply, quat_to_rotmat, rotate_sh, save_ply, sh_basis
from lyra3d.errors import InputError
from lyra3d.io.export import (
    SPLAT_RECORD_BYTES,
    USD_AXIS_ROTATIONS,
    export_gaussians,
    load_splat,
    load_usd,
    rotate_gaussians,
)


def only_files(folder, *names):
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temp file left behind


def quat_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest component difference of unit quaternions, q and -q being the same rotation."""
    a = torch.nn.functional.normalize(a.double(), dim=-1)
    b = torch.nn.functional.normalize(b.double(), dim=-1)
    return float(torch.minimum((a - b).abs().amax(1), (a + b).abs().amax(1)).max())


def importance_order(g: Gaussians) -> torch.Tensor:
    score = g.scales.double().sum(1) + torch.log(torch.sigmoid(g.opacities.double()))
    return torch.from_numpy(np.argsort(-score.numpy(), kind="stable"))


# -- PLY and .splat ---------------------------------------------------------------------------------------------
def test_ply_export_is_the_standard_ply(tmp_path, make_gaussians):
    g = make_gaussians(300, sh_degree=2)
    out = export_gaussians(g, tmp_path / "scene.ply")
    h = load_ply(out)
    for name in ("means", "scales", "quats", "opacities", "sh"):
        assert torch.equal(getattr(g, name), getattr(h, name)), name
    only_files(tmp_path, "scene.ply")


def test_splat_records_follow_the_web_viewer_layout(tmp_path):
    # One Gaussian, hand-checked byte by byte.
    g = Gaussians(means=torch.tensor([[1.0, -2.0, 3.5]]), scales=torch.log(torch.tensor([[0.1, 0.2, 0.4]])),
                  quats=torch.tensor([[2.0, 0.0, 0.0, 0.0]]), opacities=torch.tensor([0.0]),
                  sh=((torch.tensor([[[1.0, 0.5, 0.0]]]) - 0.5) / SH_C0))
    path = export_gaussians(g, tmp_path / "one.splat")
    raw = path.read_bytes()
    assert len(raw) == SPLAT_RECORD_BYTES == 32
    pos = struct.unpack("<3f", raw[0:12])
    scale = struct.unpack("<3f", raw[12:24])
    assert pos == (1.0, -2.0, 3.5)
    assert scale == pytest.approx((0.1, 0.2, 0.4), rel=1e-6)
    assert tuple(raw[24:28]) == (255, 128, 0, 128)  # rgb 1, .5, 0 and alpha sigmoid(0) = .5
    assert tuple(raw[28:32]) == (255, 128, 128, 128)  # unit wxyz (1, 0, 0, 0) as q*128+128, clipped


def test_splat_sorted_by_importance(tmp_path, make_gaussians):
    g = make_gaussians(2000, seed=3)
    load = load_splat(export_gaussians(g, tmp_path / "s.splat"))
    volume = torch.exp(load.scales.double().sum(1))
    importance = volume * load.alpha.double()  # scale product x opacity, descending up to the alpha bytes
    assert (importance[1:] <= importance[:-1] + (volume[:-1] + volume[1:]) * 0.5 / 255 + 1e-12).all()
    assert torch.equal(load.means, g.means[importance_order(g)])


@pytest.mark.parametrize("degree", [0, 3])
def test_ply_to_splat_round_trip_within_quantisation(tmp_path, make_gaussians, degree):
    g = make_gaussians(3000, sh_degree=degree, seed=degree)
    ply = save_ply(g, tmp_path / "scene.ply")
    out = export_gaussians(ply, tmp_path / "scene.splat")
    assert out.stat().st_size == 32 * len(g)
    h = load_splat(out)
    ref = g[importance_order(g)]
    assert torch.equal(h.means, ref.means)  # float32, exact
    raw = np.fromfile(out, dtype=np.float32).reshape(-1, 8)
    assert np.array_equal(raw[:, 3:6], np.exp(ref.scales.double().numpy()).astype(np.float32))  # exact
    assert torch.allclose(h.scales, ref.scales, atol=1e-6)
    step = 1 / 255
    assert (h.rgb - ref.rgb.clamp(0, 1)).abs().max() <= 0.5 * step + 1e-6
    assert (h.alpha - ref.alpha).abs().max() <= 0.5 * step + 1e-6
    # rotations: each component rounded to 1/128 (and 1.0 clipped to 127/128), then renormalised
    assert quat_error(h.quats, ref.quats) <= 2.0 / 128
    assert h.sh_degree == 0
    only_files(tmp_path, "scene.ply", "scene.splat")


# -- spherical harmonics under rotation -------------------------------------------------------------------------
def test_rotated_sh_keep_the_colour_seen_from_the_rotated_direction(make_gaussians):
    g = make_gaussians(5, sh_degree=3, seed=7)
    r = quat_to_rotmat(torch.tensor([0.3, -0.5, 0.2, 0.8], dtype=torch.float64))
    sh2 = rotate_sh(g.sh.double(), r)
    d = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    before = torch.einsum("mk,nkc->nmc", sh_basis(d, 3), g.sh.double())
    after = torch.einsum("mk,nkc->nmc", sh_basis(d @ r.T, 3), sh2)
    assert torch.allclose(before, after, atol=1e-9)
    assert torch.equal(sh2[:, 0], g.sh.double()[:, 0])


def test_rotate_gaussians_rotates_covariances(make_gaussians):
    g = make_gaussians(50, seed=2)
    r = torch.tensor(USD_AXIS_ROTATIONS["Z"], dtype=torch.float64)
    h = rotate_gaussians(g, r)

    def cov(x):
        rm = quat_to_rotmat(x.quats.double())
        return rm @ torch.diag_embed(torch.exp(2 * x.scales.double())) @ rm.transpose(1, 2)

    assert torch.allclose(cov(h), r @ cov(g) @ r.T, atol=1e-9)
    assert torch.equal(h.means, (g.means.double() @ r.T).float())


# -- USD ----------------------------------------------------------------------------------------------------------
try:
    from pxr import Gf, Usd, UsdGeom, UsdVol
except ImportError:  # the tests of the other formats still run
    Gf = Usd = UsdGeom = UsdVol = None
needs_usd = pytest.mark.skipif(Usd is None, reason="usd-core is not installed (pip install lyra3d[usd])")


def usd_counts(stage) -> dict[str, int]:
    counts: dict[str, int] = {}
    for prim in stage.Traverse():
        counts[str(prim.GetTypeName())] = counts.get(str(prim.GetTypeName()), 0) + 1
    return counts


@needs_usd
@pytest.mark.parametrize("suffix", [".usd", ".usda", ".usdz"])
def test_ply_to_usd_round_trip(tmp_path, make_gaussians, suffix):
    g = make_gaussians(1500, sh_degree=3, seed=11)
    ply = save_ply(g, tmp_path / "scene.ply")
    cams = default_camera()
    cams.save_json(tmp_path / "cameras.json")
    out = export_gaussians(ply, tmp_path / f"scene{suffix}")  # cameras.json beside the PLY is picked up
    only_files(tmp_path, "scene.ply", "cameras.json", f"scene{suffix}")

    stage = Usd.Stage.Open(str(out))
    assert usd_counts(stage) == {"Xform": 1, "ParticleField3DGaussianSplat": 1, "Points": 1, "Scope": 1,
                                 "Camera": 1}
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z and UsdGeom.GetStageMetersPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == "/World"

    # The schema prim holds activated values in USD axes.
    r = torch.tensor(USD_AXIS_ROTATIONS["Z"], dtype=torch.float64)
    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
    pos = np.array(splat.GetPositionsAttr().Get())
    assert pos.shape == (1500, 3) and np.array_equal(pos, (g.means.double() @ r.T).float().numpy())
    assert np.allclose(np.array(splat.GetScalesAttr().Get()), torch.exp(g.scales).numpy(), rtol=1e-6)
    assert np.allclose(np.array(splat.GetOpacitiesAttr().Get()), torch.sigmoid(g.opacities).numpy(), atol=1e-7)
    assert splat.GetRadianceSphericalHarmonicsDegreeAttr().Get() == 3
    assert len(splat.GetRadianceSphericalHarmonicsCoefficientsAttr().Get()) == 1500 * 16
    assert np.array(splat.GetOrientationsAttr().Get()).shape == (1500, 4)
    points = UsdGeom.Points(stage.GetPrimAtPath("/World/GaussiansPoints"))
    assert len(points.GetPointsAttr().Get()) == 1500 and len(points.GetWidthsAttr().Get()) == 1500
    colours = np.array(points.GetDisplayColorPrimvar().Get())
    assert np.allclose(colours, g.rgb.clamp(0, 1).numpy(), atol=1e-6)  # DC colour is rotation-invariant
    assert len(points.GetDisplayOpacityPrimvar().Get()) == 1500
    assert points.GetPurposeAttr().Get() == "proxy" and splat.GetPurposeAttr().Get() == "render"

    # Read back, axis conversion undone: lossless from the fallback, float32-close from the schema prim.
    for source, tol in (("points", 1e-6), ("splat", 1e-5)):
        h = load_usd(out, source=source)
        assert torch.equal(h.means, g.means), source
        assert torch.allclose(h.scales, g.scales, atol=tol), source
        assert quat_error(h.quats, g.quats) <= tol, source
        assert torch.allclose(h.alpha, g.alpha, atol=tol), source
        assert torch.allclose(h.rgb, g.rgb, atol=tol), source
        assert torch.allclose(h.sh, g.sh, atol=1e-5), source
    h = load_usd(out)
    assert torch.equal(h.opacities, g.opacities) and torch.allclose(h.quats, g.quats, atol=1e-6)


@needs_usd
def test_usd_axes_are_z_up_and_camera_forward_is_plus_y(tmp_path):
    # A Gaussian above the camera (y < 0) and in front of it, stretched vertically (along OpenCV y).
    g = Gaussians(means=torch.tensor([[0.5, -1.0, 2.0]]), scales=torch.log(torch.tensor([[0.01, 0.5, 0.01]])),
                  quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]), opacities=torch.tensor([2.0]),
                  sh=torch.zeros(1, 1, 3))
    cams = default_camera()
    out = export_gaussians(g, tmp_path / "axes.usda", cameras=cams)
    stage = Usd.Stage.Open(str(out))
    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
    x, y, z = splat.GetPositionsAttr().Get()[0]
    assert (x, y, z) == (0.5, 2.0, 1.0)  # above the camera: z > 0; in front: y > 0
    q = splat.GetOrientationsAttr().Get()[0]
    rot = Gf.Rotation(Gf.Quatd(q.GetReal(), Gf.Vec3d(q.GetImaginary())))
    long_axis = np.array(rot.TransformDir(Gf.Vec3d(0.0, 1.0, 0.0)))  # where the Gaussian's long local axis points
    assert np.allclose(np.abs(long_axis), [0, 0, 1], atol=1e-6)  # the vertical Gaussian stays vertical (Z)

    cam = UsdGeom.Camera(stage.GetPrimAtPath("/World/Cameras/cam_0000"))
    m = np.array(cam.ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
    forward = np.array([0.0, 0.0, -1.0, 0.0]) @ m  # USD cameras look down their -Z
    up = np.array([0.0, 1.0, 0.0, 0.0]) @ m
    assert np.allclose(forward[:3], [0, 1, 0]) and np.allclose(up[:3], [0, 0, 1])

    out_y = export_gaussians(g, tmp_path / "axes_y.usda", up_axis="Y")
    stage_y = Usd.Stage.Open(str(out_y))
    assert UsdGeom.GetStageUpAxis(stage_y) == UsdGeom.Tokens.y
    pos_y = UsdVol.ParticleField3DGaussianSplat(stage_y.GetPrimAtPath("/World/Gaussians")).GetPositionsAttr().Get()
    assert tuple(pos_y[0]) == (0.5, 1.0, -2.0)  # Y up, camera looking down -Z
    assert torch.equal(load_usd(out_y).means, g.means)


@needs_usd
def test_usd_cameras_project_like_the_opencv_cameras(tmp_path, make_gaussians):
    eye = torch.tensor([[0.3, -0.2, -1.0]])
    w2c = look_at(eye, torch.tensor([[0.0, 0.0, 3.0]]))
    cams = Cameras(w2c, torch.tensor([[300.0, 280.0, 170.0, 80.0]]), 320, 176)
    out = export_gaussians(make_gaussians(10), tmp_path / "cams.usda", cameras=cams)
    stage = Usd.Stage.Open(str(out))
    cam = UsdGeom.Camera(stage.GetPrimAtPath("/World/Cameras/cam_0000"))
    world = np.array([[0.4, -0.3, 2.5], [-0.5, 0.6, 4.0]])
    # OpenCV projection
    p_cam = (w2c[0, :3, :3].double().numpy() @ world.T).T + w2c[0, :3, 3].double().numpy()
    u_cv = 300.0 * p_cam[:, 0] / p_cam[:, 2] + 170.0
    v_cv = 280.0 * p_cam[:, 1] / p_cam[:, 2] + 80.0
    # USD projection: world (USD axes) -> camera local -> film back -> pixels
    r = np.array(USD_AXIS_ROTATIONS["Z"])
    m = np.array(cam.ComputeLocalToWorldTransform(Usd.TimeCode.Default()))
    local = np.c_[world @ r.T, np.ones(2)] @ np.linalg.inv(m)
    f = cam.GetFocalLengthAttr().Get()
    ha, va = cam.GetHorizontalApertureAttr().Get(), cam.GetVerticalApertureAttr().Get()
    ho, vo = cam.GetHorizontalApertureOffsetAttr().Get(), cam.GetVerticalApertureOffsetAttr().Get()
    xf, yf = f * local[:, 0] / -local[:, 2], f * local[:, 1] / -local[:, 2]
    u = (xf - (ho - ha / 2)) / ha * 320
    v = ((vo + va / 2) - yf) / va * 176
    assert np.allclose(u, u_cv, atol=1e-3) and np.allclose(v, v_cv, atol=1e-3)


@needs_usd
def test_usd_without_fallback_and_dynamic_times(tmp_path, make_gaussians):
    g = make_gaussians(100, dynamic=True)
    out = export_gaussians(g, tmp_path / "d.usd")
    assert torch.equal(load_usd(out).times, g.times)
    out2 = export_gaussians(g, tmp_path / "s.usdc", points=False)
    stage = Usd.Stage.Open(str(out2))
    assert usd_counts(stage) == {"Xform": 1, "ParticleField3DGaussianSplat": 1}
    assert torch.allclose(load_usd(out2).means, g.means)


# -- bad inputs ---------------------------------------------------------------------------------------------------
def one_line(exc_info) -> str:
    msg = str(exc_info.value)
    assert "\n" not in msg and msg
    return msg


def test_unknown_format_and_spz(tmp_path, make_gaussians):
    g = make_gaussians(10)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "scene.obj")
    assert ".obj" in one_line(e)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "scene.x", format="gltf")
    assert "gltf" in one_line(e)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "scene.spz")
    assert "spz" in one_line(e)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "scene.splat", up_axis="Z")
    assert "up_axis" in one_line(e)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "scene.usd", up_axis="X")
    assert "up_axis" in one_line(e)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".ply", ".splat", ".usd", ".usdz"])
def test_unwritable_paths(tmp_path, make_gaussians, suffix):
    if suffix.startswith(".usd") and Usd is None:
        pytest.skip("usd-core is not installed")
    g = make_gaussians(10)
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "missing" / f"scene{suffix}")
    assert "does not exist" in one_line(e)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "file" / f"scene{suffix}")
    one_line(e)
    (tmp_path / f"dir{suffix}").mkdir()
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / f"dir{suffix}")
    assert "folder" in one_line(e)


def test_mesh_ply_and_bad_splat_are_rejected(tmp_path):
    verts = np.array([(0, 0, 0), (1, 0, 0), (0, 1, 0)], dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    mesh = PlyData([PlyElement.describe(verts, "vertex"), PlyElement.describe(faces, "face")])
    mesh.write(str(tmp_path / "mesh.ply"))
    with pytest.raises(InputError) as e:
        export_gaussians(tmp_path / "mesh.ply", tmp_path / "out.splat")
    assert "not a 3DGS PLY" in one_line(e)
    (tmp_path / "bad.splat").write_bytes(b"\0" * 33)
    with pytest.raises(InputError) as e:
        load_splat(tmp_path / "bad.splat")
    assert "multiple of 32" in one_line(e)
    with pytest.raises(InputError) as e:
        load_splat(tmp_path / "none.splat")
    one_line(e)
    if Usd is None:
        return
    (tmp_path / "bad.usda").write_text("not usd at all")
    with pytest.raises(InputError) as e:
        load_usd(tmp_path / "bad.usda")
    one_line(e)


def test_nan_gaussians_are_rejected(tmp_path, make_gaussians):
    g = make_gaussians(10)
    g.means[3, 0] = float("nan")
    with pytest.raises(InputError) as e:
        export_gaussians(g, tmp_path / "x.splat")
    one_line(e)


def test_missing_optional_packages_name_the_extra(tmp_path, make_gaussians, monkeypatch):
    monkeypatch.setitem(sys.modules, "pxr", None)  # import pxr now raises ImportError
    with pytest.raises(InputError) as e:
        export_gaussians(make_gaussians(5), tmp_path / "x.usdz")
    assert "pip install lyra3d[usd]" in one_line(e)
    monkeypatch.setitem(sys.modules, "viser", None)
    from lyra3d.viewer.server import view

    with pytest.raises(InputError) as e:
        view(make_gaussians(5), port=0)
    assert "pip install lyra3d[viewer]" in one_line(e)
