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
    h = lyra3d("export", "--help")  # as a user runs it (every command's help: test_every_command_explains_itself)
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


# -- every command: help, one-line usage errors, the training commands' options ----------------------------------
#: every command, with options its help must show
COMMANDS = {
    "generate": ["--image", "--text", "--video", "--out", "--flythrough-frames"],
    "render": ["--world", "--path", "--frames"],
    "worlds": ["--count", "--split", "--dynamic"],
    "export": ["--format", "--out", "--target-faces"],
    "view": ["--port", "--host"],
    "sdg": ["--out", "--worlds", "--clips", "--images", "--num-shards", "--device", "--augment", "--split"],
    "train depth": ["--tiny", "--out", "--steps", "--views-per-world", "--base-channels"],
    "train tokenizer": ["--tiny", "--crop", "--frames", "--base-channels", "--photos", "--freeze-encoder"],
    "train video-model": ["--tiny", "--tokenizer", "--drop-prob"],
    "train text-to-image": ["--tiny", "--tokenizer", "--judge-steps", "--guidance", "--eval-only"],
    "train decoder": ["--tiny", "--data", "--dynamic", "--input-view", "--init-from", "--time-limit-s",
                      "--data-weights", "--backend"],
    "eval teacher": ["--worlds", "--frames", "--train-worlds-from", "--json"],
    "eval decoder": ["--worlds", "--decoder", "--keep-fraction", "--views"],
    "eval decoder4d": ["--decoder4d", "--decoder", "--no-baseline", "--clip-frames"],
    "eval video-teacher": ["--worlds", "--camera", "--trajectories", "--reversed"],
    "convert lyra1-decoder": ["--variant", "--force"],
}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_explains_itself(command):
    """``--help`` of every command exits 0 and shows its options; every option has a help text."""
    import typer.main
    from typer.testing import CliRunner

    from lyra3d.cli import app

    r = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "160"})
    assert r.exit_code == 0, r.output
    assert f"Usage: lyra3d {command} [OPTIONS]" in r.output
    for option in COMMANDS[command]:
        assert option in r.output, (command, option)
    click_command = typer.main.get_command(app)
    for name in command.split():
        click_command = click_command.commands[name]
    unexplained = [p.name for p in click_command.params if not p.help]
    assert not unexplained, (command, unexplained)


def test_a_training_command_is_made_from_its_config():
    """Options from the config's fields, their comments as help, the --tiny preset's values beside the
    defaults; an option given on the command line changes the preset, the others keep it."""
    from typer.testing import CliRunner

    from lyra3d.cli import app
    from lyra3d.cli.train import config_from_options, field_comments
    from lyra3d.train.depth import DepthTrainConfig
    from lyra3d.train.tokenizer import TokenizerTrainConfig

    comments = field_comments(TokenizerTrainConfig)
    assert comments["batch_size"] == "clips per step"  # the subclass's own comment wins
    assert comments["time_limit_s"].startswith("> 0: save and stop")  # RunConfig's, inherited
    help = CliRunner().invoke(app, ["train", "depth", "--help"], env={"COLUMNS": "200"}).output
    assert "Optimiser steps (the schedule's length). --tiny: 30." in help and "[default: 6000]" in help

    config = config_from_options(DepthTrainConfig, {"tiny": True, "out": "runs/x", "steps": 3, "lr": 0.5,
                                                   "base_channels": 16}, given={"out", "steps", "base_channels"})
    tiny = DepthTrainConfig.tiny("runs/x")
    assert (config.out, config.steps, config.model.base_channels) == ("runs/x", 3, 16)
    assert config.lr == tiny.lr and config.batch_size == tiny.batch_size == 4  # not given: the preset's
    assert config.model.levels == tiny.model.levels == 3
    full = config_from_options(DepthTrainConfig, {"tiny": False, "batch_size": 5}, given={"batch_size"})
    assert full.batch_size == 5 and full.steps == DepthTrainConfig().steps == 6000


def test_usage_errors_are_one_line_for_every_kind_of_command():
    assert_one_line_error(lyra3d("train", "depth", "--tiny", "--bogus", 3), "No such option: --bogus",
                          "lyra3d train depth --help")
    assert_one_line_error(lyra3d("train", "decoder", "--steps", "many"), "Invalid value for '--steps'")
    assert_one_line_error(lyra3d("train", "tokenizer", "--tiny", "--device", "tpu"), "unknown device 'tpu'")
    assert_one_line_error(lyra3d("train", "painting"), "No such command 'painting'", "lyra3d train --help")
    assert_one_line_error(lyra3d("sdg", "--worlds", 1), "Missing option '--out'")
    assert_one_line_error(lyra3d("eval", "video-teacher", "--camera", "sideways"), "unknown --camera 'sideways'")


def test_stage_bars_draw_one_row_per_stage():
    """The CLI's consumer of the progress protocol: a row per stage, announced stages shown before they report,
    a stage's counts followed, stages that were not announced get a row at their first report."""
    import io

    from rich.console import Console
    from rich.progress import Progress

    from lyra3d.cli.app import StageBars

    bar = Progress(console=Console(file=io.StringIO()))
    rows = StageBars(bar, ["depth", "decoder"], labels={"write": "writing files"})
    assert [t.description for t in bar.tasks] == ["depth"]
    rows("depth", 1, 1)
    rows("decoder", 2, 5)
    assert [(t.description, t.completed, t.total) for t in bar.tasks] == [("depth", 1, 1), ("decoder", 2, 5)]
    rows("decoder", 5, 5)
    rows("write", 0, 3)
    rows("write", 3, 3)
    assert [(t.description, t.completed, t.total) for t in bar.tasks] == \
        [("depth", 1, 1), ("decoder", 5, 5), ("writing files", 3, 3)]


def test_the_cli_is_the_top_layer():
    """No module of the library imports lyra3d.cli (only ``python -m lyra3d`` runs it): the training, SDG and
    evaluation code is a Python API the command line calls, never the other way round."""
    import ast
    from pathlib import Path

    import lyra3d

    root = Path(lyra3d.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.parent.name == "cli" or path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            offenders += [f"{path.relative_to(root)}: {n}" for n in names if n.startswith("lyra3d.cli")]
    assert not offenders and len(list(root.rglob("train/*.py"))) >= 6
