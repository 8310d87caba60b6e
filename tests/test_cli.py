"""The command line as a user meets it: real subprocesses, real files, one-line errors with exit code 2."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from plyfile import PlyData, PlyElement

from lyra3d.core.gaussians import save_ply
from lyra3d.io.video import read_video


def lyra3d(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "lyra3d", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_render_a_world_to_mp4(tmp_path):
    out = tmp_path / "world.mp4"
    r = lyra3d("render", "--world", 1000007, "--frames", 6, "--width", 96, "--height", 64, "--out", out, "-q")
    assert r.returncode == 0, r.stderr
    video, fps = read_video(out)
    assert video.shape == (6, 3, 64, 96) and fps == 24
    assert video.std() > 0.05  # a real picture, not a flat frame
    again = lyra3d("render", "--world", 1000007, "--frames", 6, "--out", out, "-q")
    assert_one_line_error(again, "exists", "--force")


def test_render_a_ply_along_a_spiral_to_gif(tmp_path, make_gaussians):
    g = make_gaussians(3000, sh_degree=1)
    g.means[:, 2] = g.means[:, 2].abs() + 3  # in front of the default camera
    save_ply(g, tmp_path / "scene.ply")
    r = lyra3d("render", tmp_path / "scene.ply", "--path", "spiral", "--frames", 5, "--width", 80, "--height",
               48, "--out", tmp_path / "s.gif", "-q")
    assert r.returncode == 0, r.stderr
    video, _ = read_video(tmp_path / "s.gif")
    assert video.shape == (5, 3, 48, 80) and video.mean() > 0.02


@pytest.fixture
def bad_plys(tmp_path, make_gaussians):
    whole = save_ply(make_gaussians(50), tmp_path / "whole.ply").read_bytes()
    (tmp_path / "corrupt.ply").write_bytes(whole[: len(whole) // 2])  # cut off mid-file
    mesh = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    PlyData([PlyElement.describe(mesh, "vertex")]).write(str(tmp_path / "mesh.ply"))
    g = make_gaussians(10)
    g.means[2, 0] = float("nan")
    save_ply(g, tmp_path / "nan.ply")
    return tmp_path


@pytest.mark.parametrize("name, fragments", [
    ("missing.ply", ["PLY file not found"]),
    ("corrupt.ply", ["not a readable PLY"]),
    ("mesh.ply", ["not a 3DGS PLY", "missing properties"]),
    ("nan.ply", ["NaN or infinite means"]),
])
def test_bad_ply_inputs_give_one_line(bad_plys, name, fragments):
    out = bad_plys / f"{name}.mp4"
    r = lyra3d("render", bad_plys / name, "--out", out)
    assert_one_line_error(r, *fragments)
    assert not out.exists() and not list(bad_plys.glob(".*tmp*"))  # nothing half-written


def test_bad_options_give_one_line(tmp_path):
    assert_one_line_error(lyra3d("render", "--out", tmp_path / "a.mp4"), "either a PLY file or --world")
    assert_one_line_error(lyra3d("render", "--world", 1, "--out", tmp_path / "a.avi"), "--out must end in")
    assert_one_line_error(lyra3d("render", "--world", 1, "--path", "loop", "--out", tmp_path / "a.mp4"),
                          "unknown camera path")
    assert_one_line_error(lyra3d("export", tmp_path / "none.ply", "--format", "splat"), "scene not found")
    assert_one_line_error(lyra3d("worlds", tmp_path / "d", "--split", "test"), "--split must be train or eval")
    assert_one_line_error(lyra3d("eval", "decoder", "--worlds", 1, "--frames", 6), "--frames must be 1 + 4·m")


def test_export_cli_and_help(tmp_path, make_gaussians):
    save_ply(make_gaussians(100), tmp_path / "scene.ply")
    r = lyra3d("export", tmp_path / "scene.ply", "--format", "splat")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "scene.splat").stat().st_size == 100 * 32
    assert_one_line_error(lyra3d("export", tmp_path / "scene.ply", "--format", "spz"), "spz")
    for cmd in ("render", "worlds", "export", "view"):
        h = lyra3d(cmd, "--help")
        assert h.returncode == 0 and "Usage" in h.stdout


def test_worlds_cli_writes_a_dataset(tmp_path):
    r = lyra3d("worlds", tmp_path / "d", "-n", 1, "--split", "eval", "--frames", 2, "--width", 32, "--height", 24,
               "--trajectories", "left,zoom_in", "--workers", 1, "-q")
    assert r.returncode == 0, r.stderr
    samples = [p for p in (tmp_path / "d").iterdir() if p.is_dir()]
    assert len(samples) == 1
    from lyra3d.data.datasets import load_sample

    s = load_sample(samples[0])
    assert s.meta["seed"] >= 1_000_000 and set(s.cameras) == {"left", "zoom_in"}
    assert tuple(s.rgb.shape[-2:]) == (24, 32) and torch.isfinite(s.depth.float()).all()
