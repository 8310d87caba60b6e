"""``lyra3d generate --preset official`` (lyra3d.cli.generate_official): a scene written end to end at the preset's
real size with tiny random official parts (one trajectory of 9 frames, one step), and one-line refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipelines"))

from official_helpers import DECODER, make_official_folder  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_official_folder(tmp_path_factory.mktemp("official_cli"), text=False, max_size=(8, 88, 160))


def test_generate_official_writes_a_scene(tmp_path, folder, invoke, world_image, save_png):
    img = save_png(world_image(1280, 704), tmp_path / "in.png")
    r = invoke("generate", "--preset", "official", "--weights", folder, "--image", img, "--out", tmp_path / "s",
               "--frames", "9", "--trajectories", "left", "--steps", "1", "--flythrough-frames", "2", "--quiet")
    assert r.exit_code == 0, r.stderr
    report = json.loads((tmp_path / "s" / "report.json").read_text())
    assert report["gaussians"] == int(9 * (704 // 8) * (1280 // 8) * (1 - DECODER.prune_ratio))
    assert report["preset"] == "official" and report["text"].startswith("zeros")
    assert (tmp_path / "s" / "scene.ply").is_file()


def test_generate_official_refusals_are_one_line(tmp_path, folder, invoke, assert_one_line_error, world_image,
                                                 save_png):
    img = save_png(world_image(64, 64), tmp_path / "in.png")
    r = invoke("generate", "--preset", "official", "--image", img, "--out", tmp_path / "a")
    assert_one_line_error(r.exit_code, r.stderr, "needs --weights DIR")
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    shutil.rmtree(partial / "decoder")
    r = invoke("generate", "--preset", "official", "--weights", partial, "--image", img, "--out", tmp_path / "b")
    assert_one_line_error(r.exit_code, r.stderr, "decoder not found", "lyra3d convert lyra1-decoder")
    r = invoke("generate", "--preset", "official", "--weights", folder, "--text", "a room", "--out", tmp_path / "c")
    assert_one_line_error(r.exit_code, r.stderr, "--text is not for --preset official")
    assert not (tmp_path / "b").exists()


def test_the_teachers_stages_are_shown_per_trajectory():
    from lyra3d.cli.generate_official import PerTrajectory, per_trajectory_stages

    stages = per_trajectory_stages(("depth", "cache", "encode", "sample", "decoder"), ("left", "up"))
    assert stages == ["depth", "cache (left)", "encode (left)", "sample (left)", "cache (up)", "encode (up)",
                      "sample (up)", "decoder"]
    seen = []
    progress = PerTrajectory(lambda *a: seen.append(a), ("left", "up"))
    for stage, done, total in [("depth", 1, 1), ("cache", 1, 1), ("sample", 1, 3), ("sample", 1, 1), ("cache", 1, 1),
                               ("sample", 1, 1), ("decoder", 1, 1)]:
        progress(stage, done, total)
    assert [s for s, _, _ in seen] == ["depth", "cache (left)", "sample (left)", "sample (left)", "cache (up)",
                                       "sample (up)", "decoder"]
