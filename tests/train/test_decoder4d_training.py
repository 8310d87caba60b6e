"""Video → 4D on real (tiny) runs: dynamic-clip SDG written and read back, 4D decoder training (the loss
falls; the training script runs on clip SDG) and the 4D evaluation on one held-out dynamic world."""

import dataclasses
import json
import math

import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.metrics import psnr
from lyra3d.core.render import rasterize
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.data import worlds
from lyra3d.data.sdg import clip_camera, clip_inputs, generate, load_sample, sample_dirs, world_inputs
from lyra3d.errors import InputError
from lyra3d.models.decoder import DecoderConfig, GaussianDecoder
from lyra3d.models.decoder4d import GaussianDecoder4D
from lyra3d.pipelines.teacher import Teacher, TeacherConfig
from lyra3d.train.decoder import DecoderTrainConfig, frame_picks, image_loss, load_data, sample_loss, train

TINY = DecoderConfig(dim=32, depth=2, heads=2, gaussian_stride=8)
CLIPS = {"frames": 5, "width": 96, "height": 48, "camera": "mixed"}


@pytest.fixture(scope="module")
def teacher():
    # two trajectories whose midpoints make held-out cameras (left/right would meet at the input camera)
    return Teacher.from_pretrained(config=TeacherConfig(steps=1, trajectories=("left", "up")))


@pytest.fixture(scope="module")
def clip_sdg(teacher, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips") / "sdg"
    inputs = clip_inputs([7], num_frames=5, width=96, height=48)
    assert generate(teacher, inputs, out, clips=CLIPS) == 2
    return out


def test_clip_sdg_writes_times_and_no_truth(teacher, clip_sdg):
    dirs = sample_dirs(clip_sdg)
    assert [d.name for d in dirs] == ["world_0000007", "world_0000007_rev"]
    for d in dirs:  # what the static SDG writes and the input video, nothing more (no depth/mask truth)
        assert sorted(p.name for p in d.iterdir()) == ["cameras.json", "depth.npy", "frames.npy", "input.npy",
                                                       "latents.safetensors", "meta.json"]
    fwd, rev = load_sample(dirs[0]), load_sample(dirs[1])
    clip = next(clip_inputs([7], num_frames=5, width=96, height=48))
    assert (fwd.input_frames - clip.video).abs().max() <= 0.5 / 255 + 1e-6  # the input, stored as uint8
    assert torch.equal(rev.input_frames, fwd.input_frames.flip(0))
    with torch.no_grad():  # and its latents (float16): what a 4D decoder with input_view reads
        want = teacher.encode(clip.video[None])[0]
    assert fwd.input_latents.shape == want.shape == (2, 16, 6, 12)
    assert torch.allclose(fwd.input_latents, want, atol=2e-2, rtol=1e-2)
    assert (rev.input_latents - fwd.input_latents).abs().max() > 0.1  # the reversed video's own
    assert torch.allclose(fwd.input_cameras.world_to_camera, clip.cameras.world_to_camera)
    assert torch.allclose(rev.input_cameras.world_to_camera, clip.cameras.world_to_camera.flip(0))
    assert fwd.latents.shape == (2, 2, 16, 6, 12) and fwd.frames.shape == (2, 5, 3, 48, 96)
    span = torch.linspace(0, worlds.DYNAMIC_HORIZON, 5)
    assert torch.allclose(fwd.times, span) and torch.allclose(rev.times, span.flip(0))
    assert fwd.meta["clip"] == {"seed": 7, "camera_motion": fwd.meta["clip"]["camera_motion"], "frames": 5}
    assert fwd.meta["clip"]["camera_motion"] == clip_camera(7) != "static"  # odd seeds move the camera ("mixed")
    assert clip_camera(6) == "static" and clip_camera(6, "up") == "up"
    assert fwd.meta["reversed"] is False and rev.meta["reversed"] is True
    assert json.loads((clip_sdg / "sdg.json").read_text())["clips"] == CLIPS
    # A clip folder takes no image samples (and clips never go where images were).
    with pytest.raises(InputError, match="other settings"):
        generate(teacher, world_inputs([3], 96, 48), clip_sdg)
    with pytest.raises(InputError, match="is a video"):
        generate(teacher, clip_inputs([8], num_frames=5, width=96, height=48), clip_sdg.parent / "x")
    with pytest.raises(InputError, match="training seeds"):
        next(clip_inputs([1_000_000]))


def _dynamic_sample():
    """Teacher-like frames of a moving world at 2 trajectories × 5 frames (frame t at time t), tokenized."""
    from lyra3d.models.modeling import shipped_weights
    from lyra3d.models.tokenizer import load_tokenizer
    from lyra3d.pipelines.teacher import DEFAULT_TOKENIZER_WEIGHTS

    world = worlds.make_world(1_000_000, dynamic=True)
    trajs = lyra_trajectories(default_camera(96, 48), 5, worlds.center_depth(world))
    cams = Cameras.cat([trajs["left"], trajs["right"]])
    times = torch.linspace(0, worlds.DYNAMIC_HORIZON, 5)
    r = worlds.render(world, cams, times.repeat(2))
    frames = r.rgb.reshape(2, 5, 3, 48, 96)
    with torch.no_grad():
        lat = load_tokenizer(shipped_weights(DEFAULT_TOKENIZER_WEIGHTS)).encode(frames)
    return {"latents": lat, "frames": (frames * 255).round().to(torch.uint8), "depth": r.depth.reshape(2, 5, 1, 48, 96),
            "w2c": cams.world_to_camera.reshape(2, 5, 4, 4), "k": cams.intrinsics.reshape(2, 5, 4), "size": (96, 48),
            "times": times, "dynamic": True}


def test_4d_training_lowers_the_loss_at_every_time():
    torch.manual_seed(0)
    sample = _dynamic_sample()
    model = GaussianDecoder4D.from_static(GaussianDecoder(DecoderConfig(dim=64, depth=2, heads=2, gaussian_stride=8)))
    cfg = DecoderTrainConfig()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    views = torch.arange(2)

    def loss_at(f: int):
        return sample_loss(model, model, sample, views, frame_picks(2, 5, f), cfg, 0.0, "torch",
                           target_time=float(sample["times"][f]))

    with torch.no_grad():
        before = [float(loss_at(f)[0]) for f in range(5)]
    for step in range(30):
        loss, _ = loss_at(step % 5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = [loss_at(f) for f in range(5)]
    # measured: mean loss over the 5 times 0.514 -> 0.242 (every time 0.46-0.53 -> 0.24-0.25); PSNR 15.6-16.6 dB
    assert sum(float(a[0]) for a in after) < 0.6 * sum(before)
    assert all(float(a[0]) < 0.7 * b for a, b in zip(after, before))
    assert min(a[1]["psnr"] for a in after) > 14.0
    assert model.target_time[2].weight.abs().sum() > 0  # the time layers trained


def test_the_input_term_teaches_the_input_camera_at_every_time():
    """No trajectory passes the input camera after time 0; the input video's term is what teaches it there."""
    sample = _dynamic_sample()
    world = worlds.make_world(1_000_000, dynamic=True)
    in_cams = default_camera(96, 48)[[0] * 5]
    video = worlds.render(world, in_cams, sample["times"]).rgb
    sample["input"] = ((video * 255).round().to(torch.uint8), in_cams)
    views, pick = torch.arange(2), lambda f: frame_picks(2, 5, f)
    last = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = GaussianDecoder4D.from_static(GaussianDecoder(DecoderConfig(dim=64, depth=2, heads=2,
                                                                            gaussian_stride=8)))
        cfg = DecoderTrainConfig(input_weight=weight)
        if weight:  # the term is input_weight · (MSE + ssim_weight · (1 − SSIM)) at the input camera, added
            with torch.no_grad():
                with_term, terms = sample_loss(model, model, sample, views, pick(3), cfg, 0.0, "torch",
                                               target_time=float(sample["times"][3]), input_frame=3)
                without = sample_loss(model, model, sample, views, pick(3), cfg, 0.0, "torch",
                                      target_time=float(sample["times"][3]))[0]
                g = model.decode(sample["latents"], Cameras(sample["w2c"].reshape(-1, 4, 4),
                                                            sample["k"].reshape(-1, 4), 96, 48),
                                 sample["times"], float(sample["times"][3]))
                rgb = rasterize(g, in_cams[[3]], backend="torch").rgb
            assert float(with_term - without) == pytest.approx(float(image_loss(rgb, video[3:4], cfg)), rel=1e-3)
            assert terms["input_psnr"] == pytest.approx(float(psnr(rgb, video[3:4])), abs=0.05)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        for step in range(30):
            f = step % 5
            loss, _ = sample_loss(model, model, sample, views, pick(f), cfg, 0.0, "torch",
                                  target_time=float(sample["times"][f]), input_frame=f)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            terms = [sample_loss(model, model, sample, views, pick(f), cfg, 0.0, "torch",
                                 target_time=float(sample["times"][f]), input_frame=f)[1] for f in range(1, 5)]
        last[weight] = sum(t["input_psnr"] for t in terms) / len(terms)
    # measured: the input camera at times 1-4 after 30 steps, 16.24 dB without the term, 16.95 dB with it
    assert last[1.0] > last[0.0] + 0.4, last


def test_train_script_on_clip_sdg(clip_sdg, tmp_path):
    static = tmp_path / "static"
    GaussianDecoder(TINY).save_pretrained(static)
    cfg = DecoderTrainConfig.tiny(str(tmp_path / "run"))
    cfg.data, cfg.dynamic, cfg.init_from, cfg.steps, cfg.device = str(clip_sdg), 1, str(static), 3, "cpu"
    cfg.eval_every = cfg.save_every = 3
    metrics = train(cfg)
    assert math.isfinite(metrics["val_psnr_vs_teacher"]) and math.isfinite(metrics["val_input_psnr"])
    model = GaussianDecoder4D.from_pretrained(tmp_path / "run" / "model")
    assert dataclasses.asdict(model.config)["dim"] == 32
    cfg2 = DecoderTrainConfig.tiny(str(tmp_path / "run2"))
    cfg2.data, cfg2.device = str(clip_sdg), "cpu"
    cfg2.static_data = str(clip_sdg)
    with pytest.raises(InputError, match="dynamic"):
        train(cfg2)


def test_train_script_with_the_input_view(clip_sdg, tmp_path):
    """``--input-view 1``: the decoder reads the input video's latents (they change the loss), the saved model
    says so, and clip SDG without those latents is refused."""
    import shutil

    from safetensors.torch import load_file, save_file

    static = tmp_path / "static"
    GaussianDecoder(TINY).save_pretrained(static)
    cfg = DecoderTrainConfig.tiny(str(tmp_path / "run"))
    cfg.data, cfg.dynamic, cfg.init_from, cfg.input_view, cfg.steps, cfg.device = \
        str(clip_sdg), 1, str(static), 1, 3, "cpu"
    cfg.eval_every = cfg.save_every = 3
    assert math.isfinite(train(cfg)["val_input_psnr"])
    model = GaussianDecoder4D.from_pretrained(tmp_path / "run" / "model")
    assert model.config.input_view is True
    with torch.no_grad():
        model.head.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    sample = load_data(sample_dirs(clip_sdg)[:1], "cpu")[0]
    views, picks = torch.arange(2), frame_picks(2, 5, 2)

    def loss():
        with torch.no_grad():
            return float(sample_loss(model, model, sample, views, picks, cfg, 0.0, "torch", target_time=2.0,
                                     input_frame=2)[0])

    first = loss()
    sample["input_latents"] = sample["input_latents"].flip(0)
    assert abs(loss() - first) > 1e-4
    old = tmp_path / "old"  # clip SDG from before the input latents were stored
    shutil.copytree(clip_sdg, old)
    for d in sample_dirs(old):
        save_file({"latents": load_file(d / "latents.safetensors")["latents"]}, d / "latents.safetensors")
    cfg.data, cfg.out = str(old), str(tmp_path / "run3")
    with pytest.raises(InputError, match="does not hold"):
        train(cfg)


def test_evaluate_decoder4d_on_one_world(teacher):
    from lyra3d.evaluation.decoder4d import evaluate_decoder4d

    torch.manual_seed(0)
    static = GaussianDecoder(TINY).eval()
    with torch.no_grad():  # a non-trivial head (the initial zero head gives the same Gaussians for any input)
        static.head.weight.normal_(std=0.05)
    d4 = GaussianDecoder4D.from_static(static)
    rows = evaluate_decoder4d(teacher, d4, [1_000_000], static_decoder=static, frames=(0, 4), width=128, height=64,
                              num_frames=5)
    row = rows[0]
    # (at 96x48 the depth network puts the scene at 100 m: trajectories fly off; 128x64 is the smallest sane size)
    for prefix in ("", "static_"):
        for key in ("novel", "traj", "between", "input_view"):
            assert math.isfinite(row[f"{prefix}{key}_psnr"]), key
            assert f"{prefix}{key}_moving_psnr" in row  # NaN where those cameras see nothing move
        for key in ("novel", "input_view"):
            assert math.isfinite(row[f"{prefix}{key}_moving_psnr"]), key
    assert math.isfinite(row["teacher_traj_psnr"]) and 0 < row["moving_fraction"] < 1
    assert row["gaussians"] == 2 * 5 * 8 * 16 and row["decoder_s"] > 0 and row["cpu_decoder_s"] == row["decoder_s"]
    # A 4D decoder fresh from a static one is that decoder (same scene at every time): same numbers.
    assert row["novel_psnr"] == pytest.approx(row["static_novel_psnr"], abs=1e-4)
    assert row["input_view_moving_psnr"] == pytest.approx(row["static_input_view_moving_psnr"], abs=1e-4)
