"""The official preset (lyra3d.pipelines.official, gen3c_teacher, lyra1_reconstructor) end to end on a CPU with tiny
random parts saved as the real ones are and loaded through the real loading code."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("diffusers")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from official_helpers import DECODER, GEN3C, make_official_folder  # noqa: E402

from lyra3d.errors import InputError  # noqa: E402
from lyra3d.pipelines.config import PRESETS, Preset, register_preset  # noqa: E402

TINY = "official-tiny-test"
if TINY not in PRESETS:
    register_preset(Preset(TINY, 128, 64, 9, 50.0))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_official_folder(tmp_path_factory.mktemp("official"))


@pytest.fixture(scope="module")
def pipe(folder):
    from lyra3d.pipelines.official import OfficialImageTo3DPipeline, OfficialMemory, official_config

    cfg = official_config(preset=TINY, steps=2, trajectories=("left", "right"))
    return OfficialImageTo3DPipeline.from_pretrained(folder, "cpu", cfg, memory=OfficialMemory(vae_tile=6,
                                                                                               vae_overlap=2))


def test_the_official_settings():
    from lyra3d.pipelines.official import OFFICIAL_PRESET, official_config

    cfg = official_config()
    assert (OFFICIAL_PRESET.width, OFFICIAL_PRESET.height, OFFICIAL_PRESET.num_frames) == (1280, 704, 121)
    assert (cfg.steps, cfg.guidance, cfg.keep_fraction, cfg.keep_input) == (35, 1.0, 1.0, "off")
    assert cfg.trajectories == ("left", "right", "up", "zoom_out", "zoom_in", "spiral")


def test_a_scene_end_to_end_with_the_official_rule_of_pruning(pipe, world_image):
    seen = []

    def hook(module, args, kwargs):
        seen.append((kwargs["hidden_states"].detach().clone(), kwargs["encoder_hidden_states"].detach().clone()))

    handle = pipe.teacher.video_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        image = world_image(128, 64)
        scene = pipe(image, seed=3)
    finally:
        handle.remove()
    # 2 trajectories x 2 steps x 2 passes (conditional, unconditional)
    assert len(seen) == 8
    x, text = seen[0]
    c = GEN3C.latent_channels
    assert x.shape == (1, GEN3C.in_channels, 2, 8, 16) and GEN3C.in_channels == c + 1 + 4 * c
    assert torch.equal(x[:, c], torch.tensor([1.0, 0.0])[None, :, None, None].expand(1, 2, 8, 16))  # condition mask
    assert x[:, c + 1:c + 1 + 2 * c].abs().sum() > 0  # the warped buffer's rgb and mask latents
    assert x[:, c + 1 + 2 * c:].abs().sum() == 0  # the second buffer: zeros (one image)
    assert seen[1][0][:, c + 1:].abs().sum() == 0  # the unconditional pass: buffers dropped
    t5 = pipe.teacher.text
    assert torch.allclose(text, t5[0]) and torch.allclose(seen[1][1], t5[1])  # prompt, then negative prompt
    n = 2 * 9 * (64 // 8) * (128 // 8)  # trajectories x decoded frames x one Gaussian per 8x8 pixels
    assert len(scene.gaussians) == int(n * (1 - DECODER.prune_ratio)) == 460
    assert scene.gaussians.means.isfinite().all()
    rgb = scene.gaussians.rgb
    assert (rgb >= 0).all() and (rgb <= 1).all()  # 0.5 tanh + 0.5
    assert float(scene.gaussians.scales.exp().max()) <= DECODER.scale_cap + 1e-6  # the 0.3 m cap
    assert scene.trajectories == ("left", "right") and len(scene.cameras) == 18


def test_the_teacher_latents_are_the_tokenizers_normalised_latents(pipe, world_image):
    from lyra3d.core.cameras import default_camera

    t = pipe.teacher
    t.config = type(t.config)(num_frames=9, steps=1, trajectories=("up",))
    image = world_image(128, 64)
    gen = t(image, default_camera(128, 64, 50.0), seed=0)
    assert gen.latents.shape == (1, 2, GEN3C.latent_channels, 8, 16) and gen.names == ("up",)
    frames = t.decode(gen.latents)
    assert frames.shape == (1, 9, 3, 64, 128) and 0 <= float(frames.min()) and float(frames.max()) <= 1


def test_bad_folders_are_one_line(tmp_path, folder):
    import shutil

    from lyra3d.pipelines.official import OfficialImageTo3DPipeline

    with pytest.raises(InputError, match="official weights folder not found"):
        OfficialImageTo3DPipeline.from_pretrained(tmp_path / "absent")
    with pytest.raises(InputError, match="needs --weights DIR"):
        OfficialImageTo3DPipeline.from_pretrained(None)
    for missing in ("gen3c", "tokenizer", "decoder"):
        partial = tmp_path / f"no_{missing}"
        shutil.copytree(folder, partial)
        shutil.rmtree(partial / missing)
        with pytest.raises(InputError, match=f"no_{missing}/{missing} not found") as e:
            OfficialImageTo3DPipeline.from_pretrained(partial)
        assert "\n" not in str(e.value)
    swapped = tmp_path / "swapped"
    shutil.copytree(folder, swapped)
    shutil.rmtree(swapped / "gen3c")
    shutil.copytree(folder / "tokenizer", swapped / "gen3c")
    with pytest.raises(InputError, match="AutoencoderKLCosmos, not a diffusers CosmosTransformer3DModel"):
        OfficialImageTo3DPipeline.from_pretrained(swapped)
    shutil.rmtree(swapped / "decoder")
    shutil.copytree(folder / "tokenizer", swapped / "decoder")
    shutil.rmtree(swapped / "gen3c")
    shutil.copytree(folder / "gen3c", swapped / "gen3c")
    with pytest.raises(InputError) as e:
        OfficialImageTo3DPipeline.from_pretrained(swapped)
    assert "decoder" in str(e.value) and "\n" not in str(e.value)
