"""The image → 3D and text → 3D pipelines with real parts: the shipped teacher (depth, tokenizer, video model)
and a small random 3DGS decoder / text-to-image model, at a small registered preset (128×64, 5 frames) so a
call takes about a second on two CPU cores."""

import json
import math

import pytest
import torch

from lyra3d import pipelines as pl
from lyra3d.core.metrics import psnr
from lyra3d.core.render import rasterize
from lyra3d.errors import InputError
from lyra3d.io.images import fit_image_tensor
from lyra3d.models.modeling import shipped_weights
from lyra3d.pipelines.base import IMAGE_STAGES
from lyra3d.pipelines.config import parse_trajectories
from lyra3d.pipelines.outputs import OUTPUT_FILES

TINY = pl.Preset("test-tiny", 128, 64, 5, 50.0, "tests only")


@pytest.fixture(scope="module")
def weights(tmp_path_factory, make_weights):
    return make_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def pipe(weights):
    pl.register_preset(TINY, replace=True)
    config = pl.GenerateConfig(preset="test-tiny", trajectories=("left", "up"), steps=1)
    yield pl.ImageTo3DPipeline.from_pretrained(weights, config=config)
    pl.PRESETS.pop("test-tiny", None)


@pytest.fixture(scope="module")
def progress_and_scene(pipe, world_image):
    """A scene and what the call told its progress (lyra3d.core.progress.Progress): ``(stage, done, total)``."""
    seen = []
    return seen, pipe(world_image(128, 64), seed=3, progress=lambda *report: seen.append(report))


def _same(a, b) -> bool:
    return all(torch.equal(getattr(a, k), getattr(b, k)) for k in ("means", "scales", "quats", "opacities", "sh"))


def test_same_seed_same_scene_other_seed_other_scene(pipe, progress_and_scene, world_image):
    image = world_image(128, 64)
    seen, first = progress_and_scene
    again = pipe(image, seed=3)
    other = pipe(image, seed=4)
    assert _same(first.gaussians, again.gaussians)
    assert not torch.equal(first.gaussians.means, other.gaussians.means)

    # what the scene holds
    # the progress protocol: each stage once, as it ends (done == total), in the order stages() says
    assert seen == [(stage, 1, 1) for stage in pipe.stages()] and pipe.stages() == IMAGE_STAGES
    assert set(first.timings) == set(IMAGE_STAGES) | {"total"} and all(v >= 0 for v in first.timings.values())
    assert first.trajectories == ("left", "up") and first.frames_per_trajectory == 5
    assert len(first.cameras) == 10 and (first.cameras.width, first.cameras.height) == (128, 64)
    assert first.input_image.shape == (3, 64, 128) and torch.allclose(first.input_image, image)
    assert first.frames is None  # keep_frames is off
    # 2 trajectories × 5 frames × (64/4 × 128/4) Gaussians, half kept by opacity rank, less those on or in front
    # of the input's surface; plus the input's own, one per pixel (keep_input, on by default)
    kept_input = first.keep_input
    assert first.gaussians_before_pruning == 2 * 5 * 16 * 32 and kept_input["input_gaussians"] == 64 * 128
    assert len(first.gaussians) == 2 * 5 * 16 * 32 // 2 - kept_input["decoder_gaussians_dropped"] + 64 * 128
    kept = torch.sigmoid(first.gaussians.opacities)
    assert first.center_depth > 0 and math.isfinite(first.center_depth)
    assert kept.min() > 0
    # the reported input-view PSNR is the render at the input camera against the input
    render = rasterize(first.gaussians, first.input_camera).rgb[0].clamp(0, 1)
    assert first.input_view_psnr == pytest.approx(float(psnr(render, image)), abs=1e-4)
    report = json.loads(json.dumps(first.report()))  # JSON-ready
    assert report["gaussians"] == len(first.gaussians) and report["seed"] == 3
    assert report["input"]["kind"] == "tensor" and report["input"]["fit"] == "none"
    assert report["config"]["trajectories"] == ["left", "up"]


def test_a_tensor_of_another_size_is_cropped_and_settings_are_checked(pipe):
    wide = torch.rand(3, 100, 300)
    image, info = fit_image_tensor(wide, 160, 96)
    assert image.shape == (3, 96, 160) and info.fit == "crop" and info.box == (66, 0, 233, 100)
    assert info.describe() == ("<tensor>: image 300×100 RGB 32-bit; center-cropped to 167×100 at (66, 0); "
                               "scaled ×0.958 to 160×96")
    padded, info = fit_image_tensor(torch.full((3, 200, 100), 0.25), 160, 96, fit="pad")
    assert info.fit == "pad" and info.pad_color == (0.25, 0.25, 0.25)
    assert torch.allclose(padded, torch.full_like(padded, 0.25), atol=1e-5)
    for bad, words in [(torch.rand(64, 128), "(3, H, W)"), (torch.zeros(3, 64, 128, dtype=torch.uint8), "floats"),
                       (torch.full((3, 64, 128), float("nan")), "NaN"), (torch.rand(3, 64, 128) * 255, "[0, 1]"),
                       (torch.rand(3, 1, 1), "too small"), ("nowhere.png", "not found")]:
        with pytest.raises(InputError, match=None) as e:
            pipe(bad)
        assert words in str(e.value) and "\n" not in str(e.value)
    for overrides, words in [({"num_frames": 6}, "1 + 4·m"), ({"num_frames": 1}, "1 + 4·m"),
                             ({"trajectories": "left,nowhere"}, "unknown trajectory 'nowhere'"),
                             ({"trajectories": "left,left"}, "repeat"), ({"trajectories": 7}, "1 to 6"),
                             ({"preset": "huge"}, "unknown preset"), ({"steps": 0}, "steps"),
                             ({"keep_fraction": 0.0}, "keep fraction"), ({"fit": "stretch"}, "crop or pad"),
                             ({"movement_factor": -1.0}, "movement factor"), ({"device": "cuda"}, "pipe.to"),
                             ({"colour": "red"}, "unknown generate setting")]:
        with pytest.raises(InputError) as e:
            pipe.stages(**overrides)
        assert words in str(e.value), (overrides, str(e.value))
    assert parse_trajectories("2") == ("left", "right")
    assert parse_trajectories(" up , spiral ") == ("up", "spiral")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            pl.GenerateConfig(device="cuda").validate()


def test_weights_folders(tmp_path, weights, pipe):
    with pytest.raises(InputError, match="weights folder not found") as e:
        pl.ImageTo3DPipeline.from_pretrained(tmp_path / "missing")
    assert "leave out --weights" in str(e.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hi")
    with pytest.raises(InputError, match="holds none of the model folders"):
        pl.ImageTo3DPipeline.from_pretrained(tmp_path / "empty")
    (tmp_path / "broken" / "decoder").mkdir(parents=True)
    with pytest.raises(InputError, match="has no config.json"):
        pl.ImageTo3DPipeline.from_pretrained(tmp_path / "broken")
    with pytest.raises(InputError, match="must be a folder"):
        pl.ImageTo3DPipeline.from_pretrained(tmp_path / "empty" / "notes.txt")
    if not (shipped_weights("decoder") / "config.json").is_file():
        with pytest.raises(InputError, match="no 3DGS decoder weights") as e:
            pl.ImageTo3DPipeline.from_pretrained()
        assert "lyra3d train decoder" in str(e.value)
    if not (shipped_weights("text_to_image") / "config.json").is_file():
        with pytest.raises(InputError) as e:
            pl.TextTo3DPipeline.from_pretrained(weights / "decoder")
        assert str(e.value).startswith("no text-to-image weights: train with `lyra3d train text-to-image` or pass "
                                       "--weights DIR")

    # a folder that is one part's checkpoint is that part; the rest are the shipped ones
    alone = pl.ImageTo3DPipeline.from_pretrained(weights / "decoder")
    assert alone.sources["decoder"] == weights / "decoder"
    assert alone.model_versions()["tokenizer"]["shipped"] and not alone.model_versions()["decoder"]["shipped"]

    # save_pretrained writes the whole layout and loads back to the same models and settings
    saved = pipe.save_pretrained(tmp_path / "saved")
    assert {p.name for p in saved.iterdir()} == {"depth", "tokenizer", "video_model", "decoder", "pipeline.json"}
    assert (saved / "video_model" / "MODEL_CARD.md").is_file()  # the shipped model card travels along
    back = pl.ImageTo3DPipeline.from_pretrained(saved)
    assert back.config == pipe.config and back.config.preset == "test-tiny"
    for a, b in ((pipe.decoder, back.decoder), (pipe.teacher.video_model, back.teacher.video_model)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert back.model_versions()["decoder"]["sha256"] == pipe.model_versions()["decoder"]["sha256"]
    # pipeline.json names the pipeline and each part's class; a settings-only file (older saves) still loads
    record = json.loads((saved / "pipeline.json").read_text())
    assert record["_class_name"] == "ImageTo3DPipeline" and record["settings"]["preset"] == "test-tiny"
    assert record["parts"] == {"depth": "DepthNet", "tokenizer": "VideoTokenizer",
                               "video_model": "VideoDiffusionModel", "decoder": "GaussianDecoder"}
    assert "device" not in record["settings"]
    (saved / "pipeline.json").write_text(json.dumps(record["settings"]))
    assert pl.ImageTo3DPipeline.from_pretrained(saved).config == pipe.config
    record["parts"]["text_to_image"] = "TextToImageModel"  # names a part the folder does not hold
    (saved / "pipeline.json").write_text(json.dumps(record))
    with pytest.raises(InputError, match="names parts that .* does not hold: text_to_image"):
        pl.ImageTo3DPipeline.from_pretrained(saved)


def test_a_users_teacher_settings_survive_a_call(pipe, world_image):
    """A call sets the sampler and trajectories of the teacher; what else a Python user set stays."""
    pipe.teacher.config.encode_precision = "fp32"
    pipe.teacher.config.far_ratio = 7.5
    try:
        pipe(world_image(128, 64), seed=0, trajectories=("left",), steps=2)
        assert pipe.teacher.config.encode_precision == "fp32" and pipe.teacher.config.far_ratio == 7.5
        assert pipe.teacher.config.trajectories == ("left",) and pipe.teacher.config.steps == 2
    finally:
        pipe.teacher.config.encode_precision, pipe.teacher.config.far_ratio = "auto", 20.0


def test_a_photo_as_a_path_and_as_a_tensor_gives_identical_model_inputs(tmp_path, pipe):
    """One resampler for files and tensors: the same PNG, read by the pipeline from its path or handed over as
    the decoded ``uint8 / 255`` tensor, gives bit-identical model inputs, cropped and padded."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:150, 0:230] / 40.0  # a smooth photo of another size and aspect than the preset
    pixels = np.stack([0.5 + 0.4 * np.sin(x + c) * np.cos(y - c) for c in (0.0, 1.0, 2.0)], -1)
    pixels = np.rint(pixels * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "photo.png")
    tensor = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    fitted = {}
    for fit in ("crop", "pad"):
        cfg = pipe.config.replace(fit=fit)
        from_path, info_path = fitted[fit] = pipe.prepare_image(tmp_path / "photo.png", cfg)
        from_tensor, info_tensor = pipe.prepare_image(tensor, cfg)
        assert from_path.shape == (3, 64, 128) and torch.equal(from_path, from_tensor), fit
        assert (info_path.box, info_path.pad_color) == (info_tensor.box, info_tensor.pad_color)
    # floats that are not 8-bit values take the same Lanczos resampler at float precision
    shifted, _ = pipe.prepare_image((tensor * 0.9 + 0.05), pipe.config.replace(fit="crop"))
    assert (shifted - (fitted["crop"][0] * 0.9 + 0.05)).abs().max() < 2.5 / 255  # 8-bit rounding apart


def test_a_decoder_for_other_latents_is_refused(pipe, small_decoder):
    from lyra3d.models.decoder import DecoderConfig, GaussianDecoder

    with pytest.raises(InputError, match="the decoder reads 8-channel latents"):
        pl.ImageTo3DPipeline(pipe.teacher, GaussianDecoder(DecoderConfig(latent_channels=8, dim=32, depth=1,
                                                                         heads=2)))
    assert small_decoder().config.latent_channels == pipe.teacher.tokenizer.latent_channels


def test_text_to_3d(weights, pipe):
    text = pl.TextTo3DPipeline.from_pretrained(weights, config=pipe.config)
    assert text.stages() == ("text_to_image",) + IMAGE_STAGES
    assert text.unknown_words("a red sphere and a purple zebra, zebra") == ("zebra",)
    stages = []
    scene = text("  a red sphere on a gray   floor ", seed=2, trajectories=("left",),
                 progress=lambda *report: stages.append(report))
    assert stages == [(stage, 1, 1) for stage in text.stages()]
    assert scene.prompt == "a red sphere on a gray floor" and scene.info.fit == "crop"  # 320×176 → 128×64
    assert scene.input_image.shape == (3, 64, 128) and scene.input_image.std() > 0
    assert len(scene.gaussians) > 0 and scene.report()["input"]["kind"] == "text"
    with pytest.raises(InputError, match="the prompt is empty"):
        text(" \n ")


def test_save_scene_writes_all_or_nothing(tmp_path, progress_and_scene, monkeypatch):
    scene = progress_and_scene[1]
    out = tmp_path / "nested" / "scene"
    reports = []
    record = pl.save_scene(scene, out, flythrough_frames=6, report={"note": "x"},
                           progress=lambda *report: reports.append(report))
    # the progress protocol with steps: frames rendered (4 per batch), then files written; each stage ends once
    assert reports == [("flythrough", 0, 6), ("flythrough", 4, 6), ("flythrough", 6, 6),
                       ("write", 0, 4), ("write", 1, 4), ("write", 2, 4), ("write", 3, 4), ("write", 4, 4)]
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)
    assert record["note"] == "x" and json.loads((out / "report.json").read_text()) == record
    assert record["files"]["scene.ply"] == (out / "scene.ply").stat().st_size
    with pytest.raises(InputError, match="exists; pass --force"):
        pl.save_scene(scene, out)
    (out / "stale.txt").write_text("from an older run")
    assert pl.save_scene(scene, out, force=True, flythrough_frames=3)["gaussians"] == len(scene.gaussians)
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUT_FILES)  # replaced whole
    record = json.loads((out / "report.json").read_text())

    import lyra3d.io.video

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(lyra3d.io.video, "write_video", broken)
    with pytest.raises(OSError):
        pl.save_scene(scene, tmp_path / "other" / "scene", flythrough_frames=3)
    with pytest.raises(OSError):
        pl.save_scene(scene, out, force=True, flythrough_frames=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nested"]  # nothing left behind
    assert sorted(p.name for p in (tmp_path / "nested").iterdir()) == ["scene"]  # the old one stays
    assert json.loads((out / "report.json").read_text()) == record
