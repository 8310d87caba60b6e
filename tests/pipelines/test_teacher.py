"""The shipped teacher, synthetic data generation and the evaluation helpers, on real (small) runs."""

import json
import shutil

import pytest
import torch

from lyra3d.core.cameras import default_camera
from lyra3d.core.metrics import psnr
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.data import worlds
from lyra3d.data.sdg import finished_ids, generate, load_sample, sample_dirs, shard_of, world_inputs
from lyra3d.errors import InputError
from lyra3d.evaluation.teacher import between_cameras, reprojection_psnr
from lyra3d.pipelines.teacher import Teacher, TeacherConfig, drop_far


@pytest.fixture(scope="module")
def small_teacher():
    """The shipped weights, one trajectory of 5 frames at 128x64, one Euler step: seconds on a CPU."""
    return Teacher.from_pretrained(config=TeacherConfig(num_frames=5, steps=1, trajectories=("left",)))


def test_shipped_teacher_first_frame_is_the_input(small_teacher):
    cam = default_camera()
    world = worlds.make_world(1_000_003)
    image = worlds.render(world, cam).rgb[0]
    out = small_teacher(image, cam, seed=0)
    assert out.latents.shape == (1, 2, 16, 22, 40)
    assert len(out.cameras) == 5
    frames = small_teacher.decode(out.latents)
    assert frames.shape == (1, 5, 3, 176, 320)
    assert float(psnr(frames[0, 0], image)) >= 28.0  # issue: the first frame reproduces the input


def test_teacher_is_deterministic_per_seed(small_teacher):
    cam = default_camera(128, 64)
    image = worlds.render(worlds.make_world(1_000_004), cam).rgb[0]
    a, b, c = (small_teacher(image, cam, seed=s).latents for s in (3, 3, 4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_bf16_encoding_gives_the_fp32_teachers_latents(small_teacher):
    """The CPU default encodes the cache in bf16 where the CPU has it natively (twice as fast): the sampled
    latents must stay those of fp32 encoding, and a bad precision name is a one-line error."""
    import dataclasses

    cam = default_camera(128, 64)
    image = worlds.render(worlds.make_world(1_000_002), cam).rgb[0]
    out = {}
    for precision in ("fp32", "bf16"):
        t = Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                    dataclasses.replace(small_teacher.config, encode_precision=precision))
        out[precision] = t(image, cam, seed=0).latents
    a, b = out["fp32"], out["bf16"]
    assert b.dtype == torch.float32
    assert not torch.equal(a, b)  # bf16 did run ...
    assert float((a - b).norm() / a.norm()) < 0.01  # ... and changed the latents by rounding only
    bad = Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                  dataclasses.replace(small_teacher.config, encode_precision="fp8"))
    with pytest.raises(InputError, match="encode precision"):
        bad(image, cam, seed=0)


def test_bf16_sampling_gives_the_fp32_teachers_latents(small_teacher):
    """``sample_precision`` (CUDA's default is bf16 autocast: flash attention): the sampled latents stay those of
    fp32 sampling to rounding, in fp32; "auto" is fp32 on a CPU; a bad name is a one-line error."""
    import dataclasses

    from lyra3d.pipelines.teacher import uses_bf16

    cam = default_camera(128, 64)
    image = worlds.render(worlds.make_world(1_000_002), cam).rgb[0]
    out = {}
    for precision in ("fp32", "bf16", "auto"):
        t = Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                    dataclasses.replace(small_teacher.config, encode_precision="fp32", sample_precision=precision))
        out[precision] = t(image, cam, seed=0).latents
    a, b = out["fp32"], out["bf16"]
    assert b.dtype == torch.float32 and torch.equal(out["auto"], a)
    assert not torch.equal(a, b)  # bf16 did run ...
    assert float((a - b).norm() / a.norm()) < 0.02  # ... and changed the latents by rounding only
    assert uses_bf16("auto", torch.device("cuda")) and not uses_bf16("auto", torch.device("cpu"))
    with pytest.raises(InputError, match="sample precision"):
        Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                dataclasses.replace(small_teacher.config, sample_precision="fp16"))(image, cam, seed=0)


def test_teacher_rejects_bad_shapes(small_teacher):
    with pytest.raises(InputError, match="image must be"):
        small_teacher(torch.rand(4, 64, 128), default_camera(128, 64))
    with pytest.raises(InputError, match="camera must be"):
        small_teacher(torch.rand(3, 64, 128), default_camera(320, 176))


def test_drop_far_removes_the_sky():
    world = worlds.make_world(1_000_001)
    r = worlds.render(world, default_camera(128, 64))
    depth = r.depth[0].clone()  # SKY_DEPTH on the sky
    kept = drop_far(depth, 20.0)
    sky = r.mask[0] == 0
    assert sky.any()
    assert (kept[sky] == 0).all()
    assert torch.equal(kept[~sky], depth[~sky])


def test_sdg_writes_resumes_and_reads_back(small_teacher, tmp_path):
    inputs = list(world_inputs([11, 12], 128, 64))
    out = tmp_path / "sdg"
    assert generate(small_teacher, inputs, out) == 2
    assert generate(small_teacher, inputs, out) == 0  # resumed: nothing left
    assert finished_ids(out) == {"world_0000011", "world_0000012"}
    s = load_sample(sample_dirs(out)[0])
    assert s.latents.shape == (1, 2, 16, 8, 16)
    assert s.frames.shape == (1, 5, 3, 64, 128) and s.depth.shape == (1, 5, 1, 64, 128)
    assert len(s.cameras) == 5 and s.names == ["left"]
    assert s.meta["caption"] == worlds.make_world(11).caption
    assert not [p for p in out.iterdir() if p.name.startswith(".tmp-")]
    other = Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                    TeacherConfig(num_frames=5, steps=2, trajectories=("left",)))
    with pytest.raises(InputError, match="other settings"):
        generate(other, inputs, out)
    assert json.loads((out / "sdg.json").read_text())["teacher"]["steps"] == 1


def test_the_shipped_depth_networks_saturated_sky_stays_out_of_the_cache(small_teacher):
    """Worlds 1,000,005/6: the depth net puts the sky at its 100 m limit, and the far-ratio cut (20 × the 10th
    percentile depth, here over 100 m) kept it, so the scene's centre was 100 m and the teacher scored 13 dB.
    The estimator's ``max_depth`` marks the saturated pixels unknown: no sky pixel is left in the cache."""
    assert small_teacher.depth.max_depth == 100.0
    cam = default_camera()
    r = worlds.render(worlds.make_world(1_000_005), cam)
    est = small_teacher.depth(r.rgb, cam.intrinsics).depth[0]
    sky = r.mask[0] == 0
    assert float(drop_far(est, small_teacher.config.far_ratio)[sky].gt(0).float().mean()) > 0.9  # the old cut
    clean = small_teacher.clean_depth(est)
    assert float(clean[sky].gt(0).float().mean()) < 0.01
    assert float(clean[~sky].gt(0).float().mean()) > 0.97  # the surfaces stay


def test_shards_partition_the_inputs():
    items = list(range(10))
    parts = [shard_of(items, i, 3) for i in range(3)]
    assert sorted(sum(parts, [])) == items
    with pytest.raises(InputError):
        shard_of(items, 3, 3)


def test_reprojection_consistency_of_true_frames():
    world = worlds.make_world(1_000_002)
    cams = lyra_trajectories(default_camera(128, 64), 5, worlds.center_depth(world))["left"]
    r = worlds.render(world, cams)
    depth = r.depth * r.mask
    good = reprojection_psnr(r.rgb, depth, cams)
    bad = reprojection_psnr(r.rgb.flip(0), depth, cams)
    assert good >= 28.0
    assert bad < good - 5


def test_between_cameras_look_at_the_scene_centre(small_teacher):
    cam = default_camera(128, 64)
    image = worlds.render(worlds.make_world(1_000_005), cam).rgb[0]
    teacher = Teacher(small_teacher.depth, small_teacher.tokenizer, small_teacher.video_model,
                      TeacherConfig(num_frames=5, steps=1, trajectories=("left", "up", "right")))
    gen = teacher(image, cam)
    held = between_cameras(gen, frames=(2, 4))
    assert len(held) == 2 * 2  # right/left meet at the input camera: left out
    c2w0 = cam.camera_to_world[0]
    assert ((held.centers - c2w0[:3, 3]).norm(dim=-1) >= 0.05 * gen.center_depth).all()
    target = c2w0[:3, 3] + c2w0[:3, 2] * gen.center_depth
    p = held.world_to_camera[:, :3, :3] @ target + held.world_to_camera[:, :3, 3]
    assert torch.allclose(p[:, :2], torch.zeros_like(p[:, :2]), atol=1e-4)  # on every optical axis
    assert (p[:, 2] > 0).all()


def test_sdg_command_writes_samples_of_the_asked_frame_count(tmp_path):
    """``lyra3d sdg --frames 5`` (:func:`run_sdg`: teacher data for a decoder that decodes short trajectories); a count the
    tokenizer cannot take is a one-line error before any work."""
    import subprocess
    import sys

    from lyra3d.data.sdg import run_sdg

    out, reports = tmp_path / "sdg5", []
    assert run_sdg(out, worlds=1, first_seed=7, frames=5, width=128, height=64, steps=1, device="cpu",
                   progress=lambda *r: reports.append(r)) == 1
    assert reports == [("samples", 0, 1), ("samples", 1, 1)]
    s = load_sample(sample_dirs(out)[0])
    assert s.frames.shape == (6, 5, 3, 64, 128) and s.latents.shape == (6, 2, 16, 8, 16)
    assert json.loads((out / "sdg.json").read_text())["teacher"]["num_frames"] == 5
    r = subprocess.run([sys.executable, "-m", "lyra3d", "sdg", "--out", str(tmp_path / "bad"), "--worlds", "1",
                        "--frames", "6", "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "1 + 4" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "bad").exists()


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                    reason="torch.compile on a CPU needs a C++ compiler")
def test_the_compiled_encoder_gives_the_eager_latents():
    """``compile_encoder``: "auto" compiles only for batches on CUDA; compiling (here "on", on the CPU) keeps the
    tokenizer's weights and their names and gives the eager latents to float tolerance."""
    from lyra3d.models.configs import TokenizerConfig
    from lyra3d.models.tokenizer import VideoTokenizer
    from lyra3d.pipelines.teacher import compile_encoder, wants_compile

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert [wants_compile("auto", d, b) for d in (cpu, cuda) for b in (False, True)] == [False, False, False, True]
    assert wants_compile("on", cpu, False) and not wants_compile("off", cuda, True)
    with pytest.raises(InputError, match="compile encoder must be auto, on or off"):
        wants_compile("yes", cpu, True)
    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(base_channels=8)).eval()
    video = torch.rand(2, 5, 3, 32, 48)
    names = list(tok.state_dict())
    with torch.no_grad():
        eager = tok.encode(video)
        compile_encoder(tok)
        compiled = tok.encode(video)
    assert tok.encoder_compiled  # it did compile ...
    assert list(tok.state_dict()) == names  # ... without renaming the weights ...
    assert float((compiled - eager).abs().max()) < 1e-4 * float(eager.abs().max())  # ... to the same latents


def test_an_encoder_that_cannot_compile_runs_eagerly_with_a_warning(small_teacher):
    """Where compiling fails (no C compiler or Triton), the teacher warns once, turns compiling off and gives the
    eager latents (the backend here is a real one that refuses)."""
    import dataclasses

    from lyra3d.models.configs import TokenizerConfig
    from lyra3d.models.tokenizer import VideoTokenizer

    def refuse(gm, example_inputs):
        raise RuntimeError("no compiler on this machine")

    torch.manual_seed(0)
    tok = VideoTokenizer(TokenizerConfig(base_channels=8)).eval()
    teacher = Teacher(small_teacher.depth, tok, small_teacher.video_model,
                      dataclasses.replace(small_teacher.config, encode_precision="fp32", compile_encoder="on"))
    video = torch.rand(1, 5, 3, 32, 48)
    with torch.no_grad():
        eager = tok.encode(video)
    tok.__dict__["_compiled_frames"] = torch.compile(tok.encode_frames, backend=refuse)  # a compiler that fails
    with pytest.warns(UserWarning, match="could not be compiled"):
        out = teacher.encode(video)
    assert torch.allclose(out, eager, atol=1e-6)
    assert teacher.config.compile_encoder == "off" and not tok.encoder_compiled
