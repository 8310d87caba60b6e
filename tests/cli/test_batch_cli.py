"""``lyra3d generate --images`` (issue 25): one-line refusals of mixed options, and a batch interrupted by SIGINT
and by SIGKILL, then rerun, loses nothing and duplicates nothing. The interrupted runs are the real command in
a subprocess (a tiny preset registered first, so a scene takes about a second)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyra3d.pipelines.outputs import OUTPUT_FILES

#: The command line in a subprocess, with a tiny preset registered (the shipped models run at any size).
RUN = """
import sys
from lyra3d import pipelines as pl
pl.register_preset(pl.Preset("test-cli", 128, 64, 5, 50.0, "tests only"), replace=True)
from lyra3d.cli import main
sys.argv = ["lyra3d", *sys.argv[1:]]
main()
"""


def test_one_scene_and_many_scene_options_never_mix(invoke, assert_one_line_error, tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    r = invoke("generate", "--image", tmp_path / "a.png", "--images", tmp_path, "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--image and --images", "one input option")
    r = invoke("generate", "--images", tmp_path, "--prompts", tmp_path / "a.png", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--images and --prompts")
    r = invoke("generate", "--image", tmp_path / "a.png", "--ray", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--ray", "many scenes")
    r = invoke("generate", "--images", tmp_path / "nothing", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "neither a folder nor a glob")
    r = invoke("generate", "--images", tmp_path, "--out", tmp_path / "o", "--force")
    assert_one_line_error(r.exit_code, r.stderr, "--force is for one scene")
    r = invoke("generate", "--videos", tmp_path, "--out", tmp_path / "o", "--reconstruct", "optimize")
    assert_one_line_error(r.exit_code, r.stderr, "--reconstruct is for --images and --prompts")
    r = invoke("generate", "--images", tmp_path, "--out", tmp_path / "o", "--optimize-steps", "3")
    assert_one_line_error(r.exit_code, r.stderr, "--optimize-steps is for --reconstruct optimize")
    assert not (tmp_path / "o").exists()


def _env() -> dict:
    """This process's environment, with the lyra3d being tested first on the path (a relative PYTHONPATH would
    not survive the subprocess's working folder)."""
    import lyra3d

    src = str(Path(lyra3d.__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
            "PYTHONUNBUFFERED": "1"}


def _start(args, tmp_path):
    env = _env()
    # Ctrl-C's default action restored in the child: a shell that started pytest in the background (no job
    # control) hands SIGINT down ignored, and Python then installs no KeyboardInterrupt handler
    return subprocess.Popen([sys.executable, "-c", RUN, *map(str, args)], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _scenes(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and (p / "report.json").is_file()) if out.exists() else []


def _interrupt(args, tmp_path, out: Path, sig: int, after: int) -> subprocess.CompletedProcess:
    """Run the batch until ``after`` scene folders exist, then send ``sig``."""
    proc = _start(args, tmp_path)
    deadline = time.time() + 300
    while len(_scenes(out)) < after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1]  # still running: interrupted mid-batch
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr)


def test_interrupted_batch_then_rerun_loses_and_duplicates_nothing(tmp_path, weights_dir, world_image, save_png):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = [f"img_{i}" for i in range(4)]
    for i, name in enumerate(names):
        save_png(world_image(128, 64, seed=1_000_030 + i), photos / f"{name}.png")
    out = tmp_path / "scenes"
    args = ["generate", "--images", photos, "--out", out, "--weights", weights_dir, "--preset", "test-cli",
            "--trajectories", "1", "--steps", "1", "--flythrough-frames", "2", "--batch-size", "1"]

    first = _interrupt(args, tmp_path, out, signal.SIGINT, after=1)
    assert first.returncode == 130 and "interrupted" in first.stderr
    done_after_int = _scenes(out)
    assert 1 <= len(done_after_int) < 4
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # Ctrl-C cleans its staging folder

    second = _interrupt(args, tmp_path, out, signal.SIGKILL, after=len(done_after_int) + 1)
    assert second.returncode == -signal.SIGKILL
    done_after_kill = _scenes(out)
    assert set(done_after_int) < set(done_after_kill)  # nothing finished is lost

    last = subprocess.run([sys.executable, "-c", RUN, *map(str, args), "-q"], env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert last.returncode == 0, last.stderr
    counts = json.loads(last.stdout.strip().splitlines()[-1])
    assert counts["skipped"] == len(done_after_kill) and counts["done"] == 4 - len(done_after_kill)
    assert counts["failed"] == 0
    # exactly one folder per input, each complete, nothing half-written or hidden left
    assert sorted(p.name for p in out.iterdir()) == sorted(["batch.json", "summary.jsonl", *names])
    for name in names:
        assert set(OUTPUT_FILES) <= {p.name for p in (out / name).iterdir()}
        assert json.loads((out / name / "report.json").read_text())["gaussians"] > 0
    rows = [json.loads(line) for line in (out / "summary.jsonl").read_text().splitlines()]
    assert [r["name"] for r in rows] == names
    assert {r["status"] for r in rows} <= {"done", "skipped"} and all(r["input_view_psnr"] > 0 for r in rows)


@pytest.fixture
def weights_dir(tmp_path, make_weights):
    return make_weights(tmp_path / "weights", text_to_image=False)
