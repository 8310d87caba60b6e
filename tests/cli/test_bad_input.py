"""Bad input, command by command (issue 26): each case runs ``python -m lyra3d ...`` in a real subprocess and must
be refused with exit code 2 and one line on stderr naming the problem, no traceback, nothing left behind in its
folder, and, when the refusal is decidable before any work (a config field, an option, an output path), within
2 s of wall time. Refusals that need the tensor shapes of a checkpoint import torch first: they get a bound that
still rules out any work (the pipeline takes minutes here), and their time is printed.

A case is ``(id, setup, argv, fragments, fast)``: ``setup(tmp)`` makes the inputs in ``tmp`` and returns a dict of
names for ``argv``'s ``{placeholders}``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lyra3d
from lyra3d.core.files import staged_dir
from lyra3d.errors import InputError

SRC = Path(lyra3d.__file__).resolve().parents[1]
SHIPPED = SRC / "lyra3d" / "weights"
IMAGE = SRC.parent / "examples" / "inputs" / "world_1000007.png"
FAST_S = 2.0  # refusal before any work, no torch import
TORCH_S = 30.0  # a refusal that imports torch first (a tensor-shape check, a PLY read): still before any work


def lyra3d_cli(*args, cwd=None) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "lyra3d", *args], capture_output=True, cwd=cwd, env=env, timeout=300)
    return r, time.perf_counter() - t0


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- inputs ---------------------------------------------------------------------------------------------------------
def weights_with(part: str, edit) -> callable:
    """A weights folder whose ``part`` has the shipped tensors and a config.json changed by ``edit(dict)`` (which
    may return a replacement: any JSON value, or bytes for the raw file)."""

    def setup(tmp: Path) -> dict:
        folder = tmp / "weights" / part
        folder.mkdir(parents=True)
        (folder / "model.safetensors").symlink_to(SHIPPED / part / "model.safetensors")
        config = json.loads((SHIPPED / part / "config.json").read_text())
        new = edit(config)
        new = config if new is None else new
        (folder / "config.json").write_bytes(new if isinstance(new, bytes) else json.dumps(new).encode())
        return {"weights": str(tmp / "weights")}

    return setup


def set_field(**fields):
    return lambda config: config.update(fields)


def a_file(tmp: Path) -> dict:
    (tmp / "file.png").write_bytes(b"not a folder")
    return {"file": str(tmp / "file.png")}


def user_folder(tmp: Path) -> dict:
    (tmp / "thesis").mkdir()
    (tmp / "thesis" / "chapter1.tex").write_text("months of work")
    return {"folder": str(tmp / "thesis")}


def ply(n: int, nan: bool = False):
    def setup(tmp: Path) -> dict:
        import torch

        from lyra3d.core.gaussians import Gaussians, save_ply

        g = Gaussians(means=torch.zeros(n, 3) + torch.tensor([0.0, 0.0, 3.0]), scales=torch.full((n, 3), -3.0),
                      quats=torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1), opacities=torch.zeros(n),
                      sh=torch.zeros(n, 1, 3))
        if nan:
            g.means[0, 0] = float("nan")
        save_ply(g, tmp / "scene.ply")
        return {"ply": str(tmp / "scene.ply")}

    return setup


def nothing(tmp: Path) -> dict:
    return {}


def symlink_loop(tmp: Path) -> dict:
    (tmp / "a.ply").symlink_to(tmp / "b.ply")
    (tmp / "b.ply").symlink_to(tmp / "a.ply")
    return {"loop": str(tmp / "a.ply")}


IMG = ["generate", "--image", str(IMAGE)]
TXT = ["generate", "--text", "a red sphere on a checkered floor"]
VID = ["generate", "--video", str(IMAGE)]  # the weights are refused before the video is read
FAST, TORCH = True, False

CASES = [
    # 1. a weights folder whose config.json is wrong: refused before anything loads, naming file and field
    ("config-field-type", weights_with("decoder", set_field(dim="256")), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["decoder/config.json", "dim must be int", '"256"'], FAST),
    ("config-heads-zero", weights_with("decoder", set_field(heads=0)), [*TXT, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["decoder/config.json", "heads must be a whole number >= 1, got 0"], FAST),
    ("config-dim-not-divisible", weights_with("video_model", set_field(dim=250)), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["video_model/config.json", "dim (250) must be a multiple of heads (4)"], FAST),
    ("config-negative-float", weights_with("depth", set_field(max_depth=-1.0)), [*VID, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["depth/config.json", "max_depth must be > 0"], FAST),
    ("config-bool-as-int", weights_with("decoder", set_field(mamba=1)), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["mamba must be bool"], FAST),
    ("config-list-items", weights_with("decoder", set_field(trained_frames=["9"])), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["trained_frames must be list[int]"], FAST),
    ("config-json-list", weights_with("tokenizer", lambda c: [c]), [*TXT, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["tokenizer/config.json", "holds a JSON list"], FAST),
    ("config-json-null", weights_with("decoder", lambda c: b"null"),
     [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"], ["decoder/config.json", "holds a JSON null"], FAST),
    ("config-not-utf8", weights_with("decoder", lambda c: b'{"dim": "\xff\xfe"}'), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["decoder/config.json", "is not UTF-8"], FAST),
    ("config-dim-vs-tensors", weights_with("decoder", set_field(dim=128, heads=4)), [*IMG, "--weights", "{weights}", "--out", "{tmp}/o"],
     ["decoder/model.safetensors does not fit", "decoder/config.json", "by the config"], TORCH),
    ("config-channels-vs-tensors", weights_with("tokenizer", set_field(latent_channels=8)),
     [*TXT, "--weights", "{weights}", "--out", "{tmp}/o"], ["tokenizer/model.safetensors does not fit", "[16, 128, 3, 3]"], TORCH),
    # 2. numeric options out of range: refused at once, by the option's range
    ("generate-frames-huge", nothing, [*IMG, "--out", "{tmp}/o", "--frames", "100001"],
     ["--frames", "less than or equal to 121"], FAST),
    ("generate-movement-huge", nothing, [*TXT, "--out", "{tmp}/o", "--movement-factor", "1e9"],
     ["--movement-factor", "less than or equal to 100"], FAST),
    ("generate-steps-zero", nothing, [*IMG, "--out", "{tmp}/o", "--steps", "0"], ["--steps"], FAST),
    ("generate-flythrough-frames", nothing, [*IMG, "--out", "{tmp}/o", "--flythrough-frames", "1000000"],
     ["--flythrough-frames", "3600"], FAST),
    ("generate-video-times", nothing, [*VID, "--out", "{tmp}/o", "--times", "1000"], ["--times", "128"], FAST),
    ("render-width-huge", nothing, ["render", "--world", "1000007", "--out", "{tmp}/v.mp4", "--width", "100000"],
     ["--width", "4096"], FAST),
    ("render-frames-huge", nothing, ["render", "--world", "1000007", "--out", "{tmp}/v.mp4", "--frames", "100001"],
     ["--frames", "3600"], FAST),
    ("render-fps-huge", nothing, ["render", "--world", "1000007", "--out", "{tmp}/v.mp4", "--fps", "1e6"],
     ["--fps", "240"], FAST),
    ("worlds-count-zero", nothing, ["worlds", "{tmp}/ds", "--count", "0"], ["--count"], FAST),
    ("sdg-width-tiny", nothing, ["sdg", "--out", "{tmp}/s", "--worlds", "1", "--width", "7"], ["--width"], FAST),
    ("sdg-steps-zero", nothing, ["sdg", "--out", "{tmp}/s", "--worlds", "1", "--steps", "0"], ["--steps"], FAST),
    # 3. output paths that cannot be made: refused before any work
    ("out-in-proc", nothing, [*IMG, "--out", "/proc/lyra3d_x"], ["/proc", "not real file systems"], FAST),
    ("out-in-sys", nothing, [*TXT, "--out", "/sys/x/y"], ["/sys/x/y", "not real file systems"], FAST),
    ("out-below-a-file", a_file, [*IMG, "--out", "{file}/sub"], ["file.png is a file, not a folder"], FAST),
    ("out-dot-force", nothing, [*IMG, "--out", ".", "--force"], ["output needs a name"], FAST),
    ("out-user-folder-force", user_folder, [*TXT, "--out", "{folder}", "--force"],
     ["thesis holds files that lyra3d did not write"], FAST),
    ("render-out-below-a-file", a_file, ["render", "--world", "1", "--out", "{file}/v.mp4"], ["is a file"], FAST),
    # 4. one set of checks for every reader of Gaussians; counts >= 1
    ("view-nan-ply", ply(4, nan=True), ["view", "{ply}", "--port", "0"], ["NaN or infinite means"], TORCH),
    ("export-splat-empty-ply", ply(0), ["export", "{ply}", "--format", "splat"], ["holds no Gaussians"], TORCH),
    ("render-empty-ply", ply(0), ["render", "{ply}", "--out", "{tmp}/v.mp4"], ["holds no Gaussians (0 vertices)"],
     TORCH),
    ("eval-worlds-zero", nothing, ["eval", "teacher", "--worlds", "0"], ["--worlds"], FAST),
    ("eval-decoder-worlds-zero", nothing, ["eval", "decoder", "--worlds", "0"], ["--worlds"], FAST),
    ("sdg-worlds-zero", nothing, ["sdg", "--out", "{tmp}/s", "--worlds", "0"], ["--worlds"], FAST),
    # 7. messages that say what is wrong
    ("render-symlink-loop", symlink_loop, ["render", "{loop}", "--out", "{tmp}/v.mp4"], ["a.ply is a symlink loop"],
     TORCH),
    ("view-symlink-loop", symlink_loop, ["view", "{loop}"], ["a.ply is a symlink loop"], FAST),
    ("export-unknown-suffix", ply(2), ["export", "{ply}", "--out", "{tmp}/scene.gltf"],
     ["cannot tell the export format", "--format"], TORCH),
    ("export-unknown-format", ply(2), ["export", "{ply}", "--format", "gltf"], ["simready"], TORCH),
    # 6. a prompt that is not UTF-8 (bytes the shell passed through)
    ("prompt-not-utf8", nothing, ["generate", "--text", b"a red \xff sphere", "--out", "{tmp}/o"],
     ["prompt holds bytes that are not UTF-8"], FAST),
    ("prompt-lone-surrogate-at-end", nothing, ["generate", "--text", b"sky \xed\xa0\x80", "--out", "{tmp}/o"],
     ["not UTF-8"], FAST),
]

TIMES: dict[str, float] = {}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_in_one_line(case, tmp_path):
    name, setup, argv, fragments, fast = case
    names = {"tmp": str(tmp_path), **setup(tmp_path)}
    before = listing(tmp_path)
    args = [a if isinstance(a, bytes) else a.format(**names) for a in argv]
    r, seconds = lyra3d_cli(*args, cwd=tmp_path)
    TIMES[name] = seconds
    stderr = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert listing(tmp_path) == before  # nothing written, nothing left behind (no staging folder)
    assert seconds < (FAST_S if fast else TORCH_S), f"{name}: refused after {seconds:.2f} s"
    print(f"{name}: {seconds:.2f} s")


def test_each_class_has_at_least_two_cases():
    prefixes = dict.fromkeys(["config", "generate", "render", "out", "prompt", "view", "export", "eval", "sdg",
                              "worlds"], 0)
    for name, *_ in CASES:
        prefixes[name.split("-")[0]] += 1
    assert prefixes["config"] >= 2 and prefixes["out"] >= 2 and prefixes["prompt"] >= 2
    assert prefixes["view"] + prefixes["export"] + prefixes["eval"] >= 2


# -- in process: what a subprocess cannot show cheaply -------------------------------------------------------------
def test_the_generate_config_has_the_ranges_and_warns_far_from_training():
    from lyra3d.pipelines.config import GenerateConfig

    for bad in ({"num_frames": 100_001}, {"movement_factor": 1e9}, {"steps": 10_000}, {"guidance": 1e6}):
        with pytest.raises(InputError):
            GenerateConfig().replace(**bad)
    assert GenerateConfig().warnings() == []
    (line,) = GenerateConfig().replace(movement_factor=8.0).warnings()
    assert "movement factor 8" in line and "0.25 to 4" in line


def test_the_torch_free_configs_are_the_model_classes_configs():
    from lyra3d.models.configs import CONFIGS
    from lyra3d.models.modeling import model_classes

    models = {k: c.config_class for k, c in model_classes().items() if c.__module__.startswith("lyra3d.models.")}
    assert models == CONFIGS


def test_a_shipped_checkpoint_passes_and_a_wrong_shape_is_named(tmp_path):
    from lyra3d.models.decoder import GaussianDecoder

    assert GaussianDecoder.check_pretrained(SHIPPED / "decoder").dim == 256
    bad = weights_with("decoder", set_field(depth=5))(tmp_path)
    with pytest.raises(InputError, match="missing .*blocks.5"):
        GaussianDecoder.from_pretrained(Path(bad["weights"]) / "decoder")


def test_nan_weights_are_named_as_weights_not_blamed_on_the_output(tmp_path):
    from safetensors.torch import load_file, save_file

    from lyra3d.models.decoder import GaussianDecoder

    folder = tmp_path / "decoder"
    folder.mkdir()
    (folder / "config.json").write_text((SHIPPED / "decoder" / "config.json").read_text())
    state = load_file(str(SHIPPED / "decoder" / "model.safetensors"))
    name = sorted(state)[0]
    state[name][..., 0] = float("nan")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(InputError, match=f"NaN or infinite weights \\({name}"):
        GaussianDecoder.from_pretrained(folder)


def test_sdg_refuses_a_bad_size_before_writing_and_a_resume_of_another_size(tmp_path):
    from lyra3d.data.sdg import generate, run_sdg, world_inputs
    from lyra3d.pipelines.teacher import Teacher, TeacherConfig

    with pytest.raises(InputError, match="--width must be a whole number from 16"):
        run_sdg(tmp_path / "tiny", worlds=1, width=7, height=48)
    assert listing(tmp_path) == []  # no folder, no sdg.json that would block a correct rerun
    teacher = Teacher.from_pretrained(config=TeacherConfig(num_frames=5, steps=1, trajectories=("left",)))
    out = tmp_path / "sdg"
    assert generate(teacher, world_inputs([0], 64, 48), out, size=(64, 48)) == 1
    assert json.loads((out / "sdg.json").read_text())["size"] == [64, 48]
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert modes["latents.safetensors"] == modes["frames.npy"]  # not safetensors' private 0600
    with pytest.raises(InputError, match="size differ"):
        generate(teacher, world_inputs([1], 96, 48), out, size=(96, 48))
    assert len([p for p in out.iterdir() if p.is_dir()]) == 1


def test_a_training_run_resumes_only_with_its_own_settings(tmp_path):
    run = tmp_path / "depth"
    r, _ = lyra3d_cli("train", "depth", "--tiny", "--out", str(run))
    assert r.returncode == 0, r.stderr.decode()
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    for args, fragments in ((["--base-channels", "16"], ["another model", "base_channels 8 there, 16 here"]),
                            (["--steps", "1"], ["at step 30, past this run's 1 steps", "--steps above 30"])):
        r, _ = lyra3d_cli("train", "depth", "--tiny", "--out", str(run), *args)
        stderr = r.stderr.decode()
        lines = stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in stderr, stderr
        assert all(f in lines[0] for f in fragments), lines[0]
        assert r.stdout == b""  # no `{}` result
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # config and log untouched


def test_an_evaluation_of_no_worlds_is_refused_in_python_too():
    from lyra3d.evaluation.report import summarize

    with pytest.raises(InputError, match="at least one world"):
        summarize([])
    assert summarize([{"seed": 1, "psnr": 20.0}, {"seed": 2, "psnr": 30.0}]) == {"psnr": 25.0}


def test_a_killed_run_s_staging_folder_is_removed_by_the_next(tmp_path):
    stale = tmp_path / ".scene.abcd1234.tmp"
    stale.mkdir()
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / ".scenes.abcd1234.tmp"  # another output's: kept
    other.mkdir()
    os.utime(other, (time.time() - 3600, time.time() - 3600))
    with staged_dir(tmp_path / "scene") as tmp:
        (tmp / "report.json").write_text("{}")
    assert listing(tmp_path) == [".scenes.abcd1234.tmp", "scene", "scene/report.json"]


def test_force_replaces_a_lyra3d_folder_but_not_a_user_one(tmp_path):
    ours = tmp_path / "scene"
    with staged_dir(ours) as tmp:
        (tmp / "report.json").write_text("{}")
    with staged_dir(ours, force=True) as tmp:
        (tmp / "report.json").write_text('{"again": 1}')
    assert json.loads((ours / "report.json").read_text()) == {"again": 1}
    theirs = tmp_path / "thesis"
    theirs.mkdir()
    (theirs / "chapter1.tex").write_text("months of work")
    with pytest.raises(InputError, match="did not write"):
        with staged_dir(theirs, force=True):
            pass
    assert listing(theirs) == ["chapter1.tex"]


def test_refusal_times(capsys):
    if TIMES:
        with capsys.disabled():
            worst = max(TIMES, key=TIMES.get)
            fast = [t for n, t in TIMES.items() if dict((c[0], c[4]) for c in CASES)[n]]
            print(f"\nrefusal times: {len(TIMES)} cases, fast max {max(fast, default=0):.2f} s, "
                  f"all max {TIMES[worst]:.2f} s ({worst})")
