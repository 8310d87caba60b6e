"""Wan 2.1 VACE from diffusers as the video model (issue 23): a tiny random WanVACEPipeline saved with save_pretrained
and loaded through lyra3d.models.diffusers_vace; the mask convention, equality with diffusers' own __call__, the
memory plan and one-line errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.diffusers_vace import VACEConfig, VACEVideoModel, read_vace_index, vace_control
from lyra3d.models.vace_memory import GIB, PartSizes, estimate_bytes, plan_memory

pytest.importorskip("diffusers")
pytest.importorskip("ftfy")
Z = 4  # the tiny VAE's latent channels


@pytest.fixture(scope="module")
def vace_dir(tmp_path_factory, tiny_vace_pipeline):
    return tiny_vace_pipeline(tmp_path_factory.mktemp("vace") / "Wan-VACE-tiny", z_dim=Z)


@pytest.fixture(scope="module")
def model(vace_dir):
    return VACEVideoModel.from_pretrained(vace_dir, "cpu", VACEConfig(max_sequence_length=16))


def _cache(v=2, t=5, h=32, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = (torch.rand((v, t, 1, h, w), generator=g) > 0.4).float()
    return torch.rand((v, t, 3, h, w), generator=g) * mask, mask, torch.rand((3, h, w), generator=g)


def test_control_video_and_mask_follow_vace_semantics():
    rgb, mask, first = _cache()
    video, vmask = vace_control(rgb, mask, first)
    assert video.shape == (2, 3, 5, 32, 64) and vmask.shape == (2, 3, 5, 32, 64)
    assert torch.equal(vmask[:, :, 0], torch.zeros_like(vmask[:, :, 0]))  # frame 0 is the input, kept whole
    assert torch.allclose(video[:, :, 0], (first * 2 - 1).expand(2, -1, -1, -1))
    holes = (mask[:, 1:] < 0.5).expand(-1, -1, 3, -1, -1).permute(0, 2, 1, 3, 4)
    assert torch.equal(vmask[:, :, 1:] == 1, holes)  # 1 (white) = generate = the cache's holes
    assert torch.equal(video[:, :, 1:][holes], torch.zeros(int(holes.sum())))  # mid-grey where VACE generates
    kept = rgb[:, 1:].permute(0, 2, 1, 3, 4) * 2 - 1
    assert torch.allclose(video[:, :, 1:][~holes], kept[~holes])


def test_a_full_cache_passes_through_as_the_kept_control_video(model):
    """The cache covers every pixel, so the mask is empty: in diffusers' VACE conditioning the control video is the
    'inactive' (kept) stream, exactly lyra3d's Wan latents of it; the 'reactive' (to generate) stream is the encoding
    of nothing (mid-grey) and the latent-size mask is 0 everywhere. Then the opposite: an empty cache."""
    rgb, _, first = _cache(v=1, seed=1)
    full = torch.ones_like(rgb[:, :, :1])
    cond = model.condition(*vace_control(rgb, full, first))  # (1, 2Z + 64, T', h, w)
    assert cond.shape == (1, 2 * Z + 64, 2, 4, 8)
    shown = rgb.clone()
    shown[:, 0] = first
    encoded = model.tokenizer.encode(shown).permute(0, 2, 1, 3, 4)  # lyra3d's normalised Wan latents
    grey = model.tokenizer.encode(torch.full_like(shown, 0.5)).permute(0, 2, 1, 3, 4)
    assert torch.allclose(cond[:, :Z], encoded, atol=1e-5)
    assert torch.allclose(cond[:, Z:2 * Z], grey, atol=1e-5)
    assert not torch.allclose(encoded, grey, atol=1e-2)
    assert torch.equal(cond[:, 2 * Z:], torch.zeros_like(cond[:, 2 * Z:]))
    empty = model.condition(*vace_control(rgb, torch.zeros_like(full), first))
    assert torch.equal(empty[:, 2 * Z:], torch.ones_like(empty[:, 2 * Z:]))  # generate everywhere after frame 0
    only_first = torch.full_like(shown, 0.5)
    only_first[:, 0] = first  # kept: the input image as frame 0; the rest mid-grey (nothing)
    assert torch.allclose(empty[:, :Z], model.tokenizer.encode(only_first).permute(0, 2, 1, 3, 4), atol=1e-5)
    assert torch.allclose(empty[:, :Z, 0], encoded[:, :, 0], atol=1e-5)  # latent frame 0 (causal): the input image


def test_batched_sampling_equals_diffusers_own_call(model):
    """Two trajectories in one transformer call give, trajectory by trajectory, what WanVACEPipeline.__call__ gives
    for that trajectory's control video and mask with the same noise (output_type="latent"), with guidance."""
    rgb, mask, first = _cache()
    video, vmask = vace_control(rgb, mask, first)
    cond = model.condition(video, vmask)
    noise = torch.randn((2, Z, 2, 4, 8), generator=torch.Generator().manual_seed(3))
    ours = model.sample(cond, steps=2, guidance=2.0, prompt="a red sphere", noise=noise)
    assert ours.shape == (2, 2, Z, 4, 8) and model.plan.batch == 2
    for i in range(2):
        ref = model.pipe(prompt="a red sphere", video=((video[i:i + 1] + 1) / 2).permute(0, 2, 1, 3, 4),
                         mask=vmask[i:i + 1].permute(0, 2, 1, 3, 4), height=32, width=64, num_frames=5,
                         num_inference_steps=2, guidance_scale=2.0, latents=noise[i:i + 1], output_type="latent",
                         max_sequence_length=16).frames
        assert torch.allclose(ours[i], ref[0].permute(1, 0, 2, 3), atol=1e-4), (ours[i] - ref[0].permute(1, 0, 2, 3)
                                                                                ).abs().max()
    seeded = model.sample(cond, steps=1, guidance=1.0, seed=7)
    assert torch.equal(seeded, model.sample(cond, steps=1, guidance=1.0, seed=7))


def test_memory_plan_picks_by_free_memory_and_names_the_setting_that_fits():
    one_b = PartSizes(text_encoder=5_700_000_000, text_encoder_block=190_000_000, text_encoder_rest=1_050_000_000,
                      transformer=2_150_000_000, transformer_block=47_000_000, transformer_rest=50_000_000,
                      vae=127_000_000, dim=1536, ffn_dim=8960)
    need = {s: estimate_bytes(one_b, s, 1, 81, 480, 832) for s in ("none", "model_offload", "group_offload")}
    assert need["none"] > need["model_offload"] > need["group_offload"]
    assert plan_memory(one_b, "auto", 6, 81, 480, 832, 140 * GIB).setting == "none"
    assert plan_memory(one_b, "auto", 6, 81, 480, 832, 140 * GIB).batch == 6
    assert plan_memory(one_b, "auto", 6, 81, 480, 832, None).setting == "none"  # a CPU
    small = plan_memory(one_b, "auto", 6, 81, 480, 832, int(need["group_offload"] / 0.85))
    assert small.setting == "group_offload" and small.batch >= 1
    with pytest.raises(InputError, match=r"^Wan VACE with memory=none needs about .* GiB for 81 frames of 832x480, "
                                         r"the GPU has 12.0 GiB free; memory=model_offload fits") as e:
        plan_memory(one_b, "none", 6, 81, 480, 832, 12 * GIB)  # the UMT5-XXL-size text encoder alone is 10.6 GiB
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"the GPU has 8.0 GiB free; memory=group_offload fits"):
        plan_memory(one_b, "model_offload", 6, 81, 480, 832, 8 * GIB)
    with pytest.raises(InputError, match="even with memory=group_offload"):
        plan_memory(one_b, "group_offload", 6, 81, 480, 832, 1 * GIB)
    with pytest.raises(InputError, match="memory must be auto or one of"):
        plan_memory(one_b, "sequential", 6, 81, 480, 832, None)


def test_bad_folders_are_one_line(tmp_path, vace_dir, tiny_sd_pipeline):
    with pytest.raises(InputError, match="video model folder not found"):
        read_vace_index(tmp_path / "nowhere")
    sd = tiny_sd_pipeline(tmp_path / "sd")
    with pytest.raises(InputError, match="holds a diffusers StableDiffusionPipeline, not a control-video \\+ mask"):
        VACEVideoModel.from_pretrained(sd)
    broken = tmp_path / "broken"
    shutil.copytree(vace_dir, broken)
    shutil.rmtree(broken / "transformer")
    with pytest.raises(InputError, match="lacks the part\\(s\\) transformer of a WanVACEPipeline") as e:
        VACEVideoModel.from_pretrained(broken)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="VACE memory must be auto or one of"):
        VACEConfig(memory="lots").validate()
