"""Wan 2.1 VACE from diffusers as the video model (issue 23): a tiny random WanVACEPipeline saved with save_pretrained
and loaded through lyra3d.models.diffusers_vace; the mask convention, equality with diffusers' own __call__, the
memory plan and one-line errors."""

from __future__ import annotations

import shutil

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.diffusers_vace import (
    VACEConfig,
    VACEVideoModel,
    offload_targets,
    part_sizes,
    read_vace_index,
    tiling_setting,
    vace_control,
)
from lyra3d.models.vace_memory import (
    GIB,
    VAE_BYTES_PER_PIXEL_FRAME,
    MemoryPlan,
    PartSizes,
    activation_bytes,
    estimate_bytes,
    plan_memory,
    stage_bytes,
    video_tokens,
)

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


GB = 10**9
#: Wan2.1-VACE-1.3B's parts in bytes as loaded in bf16 (UMT5-XXL keeps its 24 ``wo`` layers in fp32): the text
#: encoder 13.4 GB (blocks of 0.47 GB, the 256k-token embedding 2.1 GB outside them), the transformer 4.3 GB.
ONE_B = PartSizes(text_encoder=int(13.4 * GB), text_encoder_block=int(0.47 * GB), text_encoder_rest=int(2.1 * GB),
                  transformer=int(4.3 * GB), transformer_block=int(0.1 * GB), transformer_rest=int(0.05 * GB),
                  vae=int(0.25 * GB), dim=1536, ffn_dim=8960)


def test_stage_estimates_follow_what_each_setting_keeps_on_the_gpu():
    act = activation_bytes(ONE_B, 1, 81, 480, 832)
    assert video_tokens(81, 480, 832) == 21 * 30 * 52 and act == int(3.5 * 32760 * (8960 + 4 * 1536) * 2)
    tiled = int(VAE_BYTES_PER_PIXEL_FRAME[True] * 81 * 480 * 832)
    whole = int(VAE_BYTES_PER_PIXEL_FRAME[False] * 81 * 480 * 832)
    weights = ONE_B.text_encoder + ONE_B.transformer + ONE_B.vae
    assert stage_bytes(ONE_B, "none", 1, 81, 480, 832) == {
        "text": weights, "condition": weights + whole, "sample": weights + act, "decode": weights + whole}
    assert stage_bytes(ONE_B, "model_offload", 1, 81, 480, 832) == {  # one part at a time, the text encoder freed
        "text": ONE_B.text_encoder, "condition": ONE_B.vae + whole, "sample": ONE_B.transformer + act,
        "decode": ONE_B.vae + whole}
    go = stage_bytes(ONE_B, "group_offload", 1, 81, 480, 832)  # two blocks resident, the VAE tiled, text on the CPU
    assert go == {"text": ONE_B.vae, "condition": ONE_B.vae + tiled,
                  "sample": ONE_B.vae + int(0.05 * GB) + 2 * int(0.1 * GB) + act, "decode": ONE_B.vae + tiled}
    assert estimate_bytes(ONE_B, "group_offload", 1, 81, 480, 832) == max(go.values()) < 12 * GB  # the 1.3B goal
    six = stage_bytes(ONE_B, "group_offload", 6, 81, 480, 832)
    assert six["sample"] - go["sample"] == activation_bytes(ONE_B, 6, 81, 480, 832) - act  # only activations grow
    with pytest.raises(InputError, match="memory must be auto or one of"):
        stage_bytes(ONE_B, "sequential", 1, 81, 480, 832)


def test_memory_plan_picks_by_free_memory_and_names_the_setting_that_fits():
    need = {s: estimate_bytes(ONE_B, s, 1, 81, 480, 832) for s in ("none", "model_offload", "group_offload")}
    assert need["none"] > need["model_offload"] > need["group_offload"]
    assert plan_memory(ONE_B, "auto", 6, 81, 480, 832, 140 * GIB) == MemoryPlan(
        "none", 6, estimate_bytes(ONE_B, "none", 6, 81, 480, 832))
    assert plan_memory(ONE_B, "auto", 6, 81, 480, 832, None).setting == "none"  # a CPU
    assert plan_memory(ONE_B, "group_offload", 6, 81, 480, 832, None).setting == "group_offload"
    consumer = plan_memory(ONE_B, "auto", 6, 81, 480, 832, 12 * GB)  # a 12 GB GPU: group offloading, 2 per call
    assert consumer.setting == "group_offload" and consumer.batch == 2 and consumer.estimate <= 0.9 * 12 * GB
    assert plan_memory(ONE_B, "group_offload", 6, 81, 480, 832, 12 * GB, batch=1).batch == 1
    with pytest.raises(InputError, match=r"^Wan VACE with memory=none needs about .* GiB for 81 frames of 832x480, "
                                         r"the GPU has 16.0 GiB free; memory=model_offload fits .*--video-memory "
                                         r"model_offload\)$") as e:
        plan_memory(ONE_B, "none", 6, 81, 480, 832, 16 * GIB)
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match=r"the GPU has 12.0 GiB free; memory=group_offload fits"):
        plan_memory(ONE_B, "model_offload", 6, 81, 480, 832, 12 * GIB)  # the 12.5 GiB text encoder moves in whole
    with pytest.raises(InputError, match="even with memory=group_offload"):
        plan_memory(ONE_B, "group_offload", 6, 81, 480, 832, 1 * GIB)
    with pytest.raises(InputError, match="memory must be auto or one of"):
        plan_memory(ONE_B, "sequential", 6, 81, 480, 832, None)


def test_part_sizes_count_bytes_and_cut_blocks_where_group_offloading_does(model):
    pipe = model.pipe
    te, tr = pipe.text_encoder, pipe.transformer
    assert offload_targets(te) == [te.encoder] and offload_targets(tr) == [tr]  # UMT5's blocks are in encoder.block
    sizes = part_sizes(pipe)
    nbytes = lambda ps: sum(p.numel() * p.element_size() for p in ps)  # noqa: E731
    assert sizes.text_encoder == nbytes(te.parameters()) and sizes.vae == nbytes(pipe.vae.parameters())
    assert sizes.text_encoder_block == nbytes(te.encoder.block[0].parameters())  # one UMT5 block
    assert sizes.text_encoder_rest == nbytes(te.parameters()) - nbytes(te.encoder.block.parameters())
    blocks = [*tr.blocks, *tr.vace_blocks]
    assert sizes.transformer_block == max(nbytes(b.parameters()) for b in blocks)
    assert sizes.transformer_rest == sizes.transformer - sum(nbytes(b.parameters()) for b in blocks)
    half = VACEVideoModel(pipe, "cpu")
    pipe.text_encoder.encoder.block[0].layer[1].DenseReluDense.wo.to(torch.bfloat16)  # a part in another dtype
    try:
        assert part_sizes(pipe).text_encoder == sizes.text_encoder - te.encoder.block[0].layer[1].DenseReluDense.wo \
            .weight.numel() * 2
    finally:
        pipe.text_encoder.encoder.block[0].layer[1].DenseReluDense.wo.float()
    assert half.sizes == sizes


@pytest.mark.parametrize("setting", ["group_offload", "model_offload"])
def test_offloaded_placements_give_the_plain_latents(vace_dir, setting):
    """diffusers' group offloading (the transformer's blocks, as on a GPU but with the CPU as both devices and no stream;
    the text encoder runs on the CPU) and model CPU offload give, bit for bit, the latents of every part in place; release()
    removes the hooks so another setting applies."""
    from diffusers.hooks import HookRegistry

    rgb, mask, first = _cache(seed=4)
    plain = VACEVideoModel.from_pretrained(vace_dir, "cpu", VACEConfig(max_sequence_length=16))
    want = plain.generate(rgb, mask, first, steps=2, guidance=2.0, seed=5, prompt="a red sphere")
    vm = VACEVideoModel.from_pretrained(vace_dir, "cpu", VACEConfig(memory=setting, max_sequence_length=16))
    got = vm.generate(rgb, mask, first, steps=2, guidance=2.0, seed=5, prompt="a red sphere")
    assert vm.plan.setting == setting and torch.equal(got, want)
    te, tr = vm.pipe.text_encoder, vm.pipe.transformer
    hooked = lambda m: hasattr(m, "_diffusers_hook") and HookRegistry.check_if_exists_or_initialize(m).get_hook(  # noqa
        "group_offloading") is not None
    if setting == "group_offload":
        assert hooked(tr.blocks[0]) and hooked(tr.vace_blocks[0]) and not hooked(te.encoder.block[0])  # on the CPU
        assert not hooked(vm.pipe.vae) and vm.pipe.vae.use_tiling  # the VAE stays, in tiles
    else:
        assert hasattr(tr, "_hf_hook") and hasattr(te, "_hf_hook")
    vm.release()
    assert vm.plan is None and not hooked(tr.blocks[0]) and not hooked(te.encoder.block[0])
    assert not hasattr(tr, "_hf_hook") or tr._hf_hook is None
    vm.config.memory = "none"
    assert torch.equal(vm.generate(rgb, mask, first, steps=2, guidance=2.0, seed=5, prompt="a red sphere"), want)
    assert vm.plan.setting == "none"


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
    with pytest.raises(InputError, match=r"^video memory \(--video-memory\) must be auto, none, model_offload, "
                                         r"group_offload, got 'lots'$"):
        VACEConfig(memory="lots").validate()
    assert [tiling_setting(v) for v in ("auto", "on", "off", True, False)] == ["auto", True, False, True, False]
    with pytest.raises(InputError, match=r"^vae tiling \(--vae-tiling\) must be auto, on or off, got 'yes'$"):
        VACEConfig(vae_tiling="yes").validate()
