import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from lyra3d.core.gaussians import Gaussians, load_ply, ply_property_names, quat_to_rotmat, save_ply
from lyra3d.errors import InputError

STANDARD_DEG0 = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                 "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
FIELDS = ("means", "scales", "quats", "opacities", "sh", "times")


def assert_bit_equal(a: Gaussians, b: Gaussians):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == y.dtype and torch.equal(x, y), name


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_round_trip_is_bit_exact(tmp_path, make_gaussians, degree):
    g = make_gaussians(500, sh_degree=degree, seed=degree)
    path = save_ply(g, tmp_path / "scene.ply")
    assert_bit_equal(g, load_ply(path))
    assert not [p for p in tmp_path.iterdir() if p.name != "scene.ply"]  # no temp file left behind


def test_dynamic_gaussians_keep_their_times(tmp_path, make_gaussians):
    g = make_gaussians(50, dynamic=True)
    assert_bit_equal(g, load_ply(save_ply(g, tmp_path / "dyn.ply")))


def test_ply_has_exactly_the_standard_properties(tmp_path, make_gaussians):
    save_ply(make_gaussians(10), tmp_path / "a.ply")
    ply = PlyData.read(str(tmp_path / "a.ply"))
    assert [e.name for e in ply.elements] == ["vertex"]
    assert [p.name for p in ply["vertex"].properties] == STANDARD_DEG0
    assert all(p.val_dtype in ("f4", "float32") for p in ply["vertex"].properties)
    save_ply(make_gaussians(10, sh_degree=3), tmp_path / "b.ply")
    names = [p.name for p in PlyData.read(str(tmp_path / "b.ply"))["vertex"].properties]
    assert names == ply_property_names(3) and len(names) == 17 + 45
    assert names[9:54] == [f"f_rest_{i}" for i in range(45)]


def test_f_rest_is_channel_major(tmp_path):
    # INRIA layout: f_rest_0..14 are the red coefficients 1..15, then green, then blue.
    sh = torch.zeros(1, 16, 3)
    sh[0, 1:, 0], sh[0, 1:, 1], sh[0, 1:, 2] = 1.0, 2.0, 3.0
    g = Gaussians(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([[1.0, 0, 0, 0]]), torch.zeros(1), sh)
    v = PlyData.read(str(save_ply(g, tmp_path / "c.ply")))["vertex"]
    assert [float(v[f"f_rest_{i}"][0]) for i in (0, 14, 15, 29, 30, 44)] == [1, 1, 2, 2, 3, 3]


def test_ply_from_another_writer_with_extra_properties_loads(tmp_path):
    names = STANDARD_DEG0 + ["red"]
    arr = np.zeros(3, dtype=[(n, "f4") for n in names])
    arr["x"] = [1, 2, 3]
    arr["rot_0"] = 1
    PlyData([PlyElement.describe(arr, "vertex")], text=True).write(str(tmp_path / "ascii.ply"))
    g = load_ply(tmp_path / "ascii.ply")
    assert g.means[:, 0].tolist() == [1, 2, 3] and g.sh_degree == 0


def test_bad_ply_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_ply(tmp_path / "missing.ply")
    (tmp_path / "corrupt.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 5\ngarbage")
    with pytest.raises(InputError, match="not a readable PLY"):
        load_ply(tmp_path / "corrupt.ply")
    (tmp_path / "empty.ply").write_bytes(b"")
    with pytest.raises(InputError, match="not a readable PLY"):
        load_ply(tmp_path / "empty.ply")
    mesh = np.zeros(4, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(mesh, "vertex"), PlyElement.describe(faces, "face")]).write(str(tmp_path / "mesh.ply"))
    with pytest.raises(InputError, match="not a 3DGS PLY: missing properties f_dc_0"):
        load_ply(tmp_path / "mesh.ply")


def test_nan_gaussians_are_rejected(make_gaussians):
    g = make_gaussians(20)
    g.means[3, 1] = float("nan")
    g.opacities[7] = float("inf")
    with pytest.raises(InputError, match="1 Gaussians have NaN or infinite means"):
        g.validate()


def test_wrong_shapes_are_rejected():
    with pytest.raises(InputError, match=r"scales must have shape \(2, 3\)"):
        Gaussians(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, 1, 3))
    with pytest.raises(InputError, match="degree"):
        Gaussians(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2), torch.zeros(2, 5, 3))


def test_prune_by_opacity(make_gaussians):
    g = make_gaussians(1000)
    kept = g.prune_by_opacity(min_opacity=0.5)
    assert len(kept) == int((g.alpha >= 0.5).sum()) and (kept.alpha >= 0.5).all()
    top = g.prune_by_opacity(keep_fraction=0.1)
    assert len(top) == 100 and top.alpha.min() >= g.alpha.sort(descending=True).values[99]
    extra = g.prune_by_opacity(keep_fraction=0.1, random_fraction=0.5, generator=torch.Generator().manual_seed(0))
    assert 450 - 60 < len(extra) - 100 < 450 + 60


def test_cat_pads_sh(make_gaussians):
    a, b = make_gaussians(5, sh_degree=0), make_gaussians(7, sh_degree=2, seed=1)
    c = Gaussians.cat([a, b])
    assert len(c) == 12 and c.sh_degree == 2
    assert torch.equal(c.sh[:5, 0], a.sh[:, 0]) and (c.sh[:5, 1:] == 0).all()
    assert torch.equal(c.means[5:], b.means)


def test_rigid_transform_moves_means_and_covariances(make_gaussians):
    g = make_gaussians(30)
    angle = torch.tensor(0.7)
    m = torch.eye(4)
    m[:3, :3] = quat_to_rotmat(torch.tensor([torch.cos(angle / 2), 0.3, torch.sin(angle / 2), -0.2]))
    m[:3, 3] = torch.tensor([1.0, -2.0, 0.5])
    t = g.transform(m, scale=2.0)
    r = m[:3, :3]
    assert torch.allclose(t.means, 2 * g.means @ r.T + m[:3, 3], atol=1e-5)

    def cov(x: Gaussians):
        rot = quat_to_rotmat(x.quats)
        s = torch.diag_embed(x.linear_scales**2)
        return rot @ s @ rot.transpose(1, 2)

    assert torch.allclose(cov(t), 4 * r @ cov(g) @ r.T, atol=1e-5)
    assert torch.equal(t.sh, g.sh) and torch.equal(t.opacities, g.opacities)


def test_rotmat_to_quat_inverts_quat_to_rotmat_batched_and_single():
    from lyra3d.core.gaussians import rotmat_to_quat

    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(500, 4, dtype=torch.float64, generator=gen), dim=-1)
    q[:4] = torch.tensor([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]], dtype=torch.float64)  # 180° turns
    r = quat_to_rotmat(q)
    back = rotmat_to_quat(r)
    assert back.shape == (500, 4) and back.dtype == torch.float64
    assert torch.allclose(quat_to_rotmat(back), r, atol=1e-12)
    assert torch.allclose((back * q).sum(-1).abs(), torch.ones(500, dtype=torch.float64), atol=1e-12)  # ±q
    one = rotmat_to_quat(r[7].float())
    assert one.shape == (4,) and one.dtype == torch.float32
    assert torch.allclose(quat_to_rotmat(one), r[7].float(), atol=1e-6)
