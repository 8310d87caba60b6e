"""Video VAEs from diffusers as the tokenizer (issue 22): each of the five classes built here with a tiny config
and random weights (the real down-sampling structure, few channels), saved with ``save_pretrained`` and loaded
through :func:`lyra3d.models.tokenizer.load_tokenizer`; shapes, dtypes, the latent normalisation computed by
hand, one decoder training step on each VAE's latents, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

diffusers = pytest.importorskip("diffusers")

from lyra3d.errors import InputError  # noqa: E402
from lyra3d.models.configs import DecoderConfig  # noqa: E402
from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer, LatentShape  # noqa: E402
from lyra3d.models.tokenizer import Tokenizer, latent_shape_of, load_tokenizer, tokenizer_latent_shape  # noqa: E402

WAN_MEAN, WAN_STD = [0.1, -0.2, 0.3, 0.0], [2.0, 0.5, 1.5, 1.0]
COSMOS_MEAN, COSMOS_STD = [0.01 * i for i in range(4 * 16)], [1 + 0.02 * i for i in range(4 * 16)]


def tiny_vae(name: str, channels: int = 4):
    """A tiny random VAE of class ``name`` with the published models' compression (Wan, CogVideoX, HunyuanVideo:
    8x space, 4x time; LTX-Video: 32x space, 8x time; Cosmos CV8x8x8: 8x, 8x)."""
    torch.manual_seed(0)
    if name == "AutoencoderKLWan":
        mean, std = (WAN_MEAN, WAN_STD) if channels == 4 else ([0.0] * channels, [1.0] * channels)
        return diffusers.AutoencoderKLWan(base_dim=8, z_dim=channels, dim_mult=[1, 2, 2, 2], num_res_blocks=1,
                                          temperal_downsample=[False, True, True], latents_mean=mean, latents_std=std)
    if name == "AutoencoderKLCogVideoX":
        return diffusers.AutoencoderKLCogVideoX(block_out_channels=(8, 8, 8, 8), latent_channels=channels,
                                                layers_per_block=1, norm_num_groups=2, scaling_factor=0.7)
    if name == "AutoencoderKLLTXVideo":
        vae = diffusers.AutoencoderKLLTXVideo(latent_channels=8, block_out_channels=(8, 8, 8, 8),
                                              decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1,) * 5,
                                              decoder_layers_per_block=(1,) * 5, scaling_factor=1.5)
        with torch.no_grad():  # non-trivial statistics (the published VAE ships its own in these buffers)
            vae.latents_mean.copy_(torch.linspace(-0.5, 0.5, 8))
            vae.latents_std.copy_(torch.linspace(0.5, 2.0, 8))
        return vae
    if name == "AutoencoderKLHunyuanVideo":
        return diffusers.AutoencoderKLHunyuanVideo(latent_channels=channels, block_out_channels=(8, 8, 8, 8),
                                                   layers_per_block=1, norm_num_groups=2, scaling_factor=0.5)
    if name == "AutoencoderKLCosmos":
        return diffusers.AutoencoderKLCosmos(encoder_block_out_channels=(8, 8, 8, 8),
                                             decode_block_out_channels=(8, 8, 8, 8),
                                             attention_resolutions=(), resolution=64, num_layers=1, latent_channels=4,
                                             latents_mean=COSMOS_MEAN, latents_std=COSMOS_STD)
    raise ValueError(name)


def by_hand(name: str, vae, z: torch.Tensor) -> torch.Tensor:
    """The normalisation each model's own diffusers pipeline applies, written out: raw ``z (B, C, T', h, w)``."""
    cfg = vae.config
    if name == "AutoencoderKLWan":
        return (z - torch.tensor(WAN_MEAN).view(1, -1, 1, 1, 1)) / torch.tensor(WAN_STD).view(1, -1, 1, 1, 1)
    if name == "AutoencoderKLLTXVideo":
        return (z - vae.latents_mean.view(1, -1, 1, 1, 1)) * cfg.scaling_factor / vae.latents_std.view(1, -1, 1, 1, 1)
    if name in ("AutoencoderKLCogVideoX", "AutoencoderKLHunyuanVideo"):
        return z * cfg.scaling_factor
    t = z.shape[2]  # Cosmos: per channel and latent frame
    mean = torch.tensor(COSMOS_MEAN).view(1, 4, -1, 1, 1)[:, :, :t]
    return (z - mean) / torch.tensor(COSMOS_STD).view(1, 4, -1, 1, 1)[:, :, :t]


SHAPES = {"AutoencoderKLWan": LatentShape(4, 8, 4), "AutoencoderKLCogVideoX": LatentShape(4, 8, 4),
          "AutoencoderKLLTXVideo": LatentShape(8, 32, 8), "AutoencoderKLHunyuanVideo": LatentShape(4, 8, 4),
          "AutoencoderKLCosmos": LatentShape(4, 8, 8)}


@pytest.fixture(scope="module", params=list(SHAPES))
def saved_vae(request, tmp_path_factory):
    """``(class name, folder)``: the tiny VAE saved with ``save_pretrained``."""
    folder = tmp_path_factory.mktemp("vae") / request.param
    tiny_vae(request.param).save_pretrained(folder)
    return request.param, folder


def test_each_vae_loads_as_a_tokenizer_and_encodes_and_decodes_a_clip(saved_vae):
    name, folder = saved_vae
    tok = load_tokenizer(folder)
    shape = SHAPES[name]
    assert isinstance(tok, DiffusersVideoTokenizer) and isinstance(tok, Tokenizer) and type(tok.vae).__name__ == name
    assert latent_shape_of(tok) == shape == tokenizer_latent_shape(folder)  # from the config alone, too
    assert tok.tiling == "auto" and tok.vae.use_slicing  # by default: slicing, and tiling for large frames
    video = torch.rand(2, 9, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    z = tok.encode(video)
    s, k = shape.spatial_factor, shape.temporal_factor
    assert z.shape == (2, 1 + 8 // k, shape.latent_channels, 64 // s, 64 // s) and z.dtype == torch.float32
    assert torch.equal(z, tok.encode(video))  # deterministic: the distribution's mode
    # the normalisation, by hand from the VAE itself
    with torch.no_grad():
        raw = tok.vae.encode(video.permute(0, 2, 1, 3, 4) * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(z, by_hand(name, tok.vae, raw).permute(0, 2, 1, 3, 4), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(z, raw.permute(0, 2, 1, 3, 4))  # it was applied
    assert not tok.vae.use_tiling  # 64x64: encoded whole
    out = tok.decode(z)
    assert out.shape == video.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    with torch.no_grad():  # decode undoes the normalisation before the VAE's decoder
        want = ((tok.vae.decode(raw).sample.permute(0, 2, 1, 3, 4) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(out, want, rtol=1e-4, atol=1e-4)


def test_frames_that_do_not_fit_the_temporal_or_spatial_factor_are_one_line_errors(saved_vae):
    name, folder = saved_vae
    tok = load_tokenizer(folder)
    k, s = SHAPES[name].temporal_factor, SHAPES[name].spatial_factor
    with pytest.raises(InputError, match=rf"1 \+ {k}·m frames"):
        tok.encode(torch.rand(1, 1 + k + 2, 3, 64, 64))
    if s > 8:
        with pytest.raises(InputError, match=f"multiples of {s}"):
            tok.encode(torch.rand(1, 1 + k, 3, 48, 64))


def test_tiling_and_slicing_are_options():
    vae = tiny_vae("AutoencoderKLWan")
    tok = DiffusersVideoTokenizer(vae, tiling=False, slicing=False)
    assert not vae.use_tiling and not vae.use_slicing and (tok.tiling, tok.slicing) == (False, False)
    assert DiffusersVideoTokenizer(vae, tiling=True).vae.use_tiling
    tok = DiffusersVideoTokenizer(vae)  # auto: frames with a side over 512 px are tiled
    z = tok.encode(torch.rand(1, 1, 3, 16, 520))
    assert vae.use_tiling and z.shape == (1, 1, 4, 2, 65)
    tok.encode(torch.rand(1, 1, 3, 16, 512))
    assert not vae.use_tiling
    with pytest.raises(InputError, match="tiling must be"):
        DiffusersVideoTokenizer(vae, tiling="sometimes")


def test_one_decoder_training_step_on_each_vaes_latents(saved_vae, tmp_path, write_sdg_folder):
    from lyra3d.models.decoder import GaussianDecoder
    from lyra3d.train.decoder import DecoderTrainConfig, data_latent_shape, load_data, sample_loss

    name, folder = saved_vae
    tok = load_tokenizer(folder)
    sdg = write_sdg_folder(tmp_path / "sdg", [3], frames=9, width=64, height=64, tokenizer=tok)
    config = DecoderTrainConfig.tiny(str(tmp_path / "run"))
    config.data, config.tokenizer = str(sdg), str(folder)
    shape = data_latent_shape(config, [sdg / "world_0000003"])
    assert shape == SHAPES[name]
    torch.manual_seed(0)
    decoder = GaussianDecoder(config.model.for_latents(shape)).train()
    assert decoder.config.reads(tok) and decoder.config.patch_px >= 16
    sample = load_data([sdg / "world_0000003"], torch.device("cpu"))[0]
    assert sample["latents"].shape[2] == shape.latent_channels
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    loss, terms = sample_loss(decoder, decoder, sample, torch.arange(2), torch.tensor([0, 9, 17]), config, 0.0, "torch")
    assert torch.isfinite(loss) and loss > 0 and terms["psnr"] > 0
    loss.backward()
    assert decoder.latent_in.weight.grad is not None and decoder.head.weight.grad.abs().sum() > 0
    opt.step()
    changed = [k for k, v in decoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "head.weight" in changed and "latent_in.weight" in changed


def test_lyra3d_train_decoder_builds_the_decoder_from_the_tokenizer(tmp_path, write_sdg_folder, invoke):
    """LTX-Video's 128-channel (here 8), 32x space, 8x time latents: `lyra3d train decoder --tokenizer DIR`."""
    folder = tmp_path / "ltx"
    tiny_vae("AutoencoderKLLTXVideo").save_pretrained(folder)
    sdg = write_sdg_folder(tmp_path / "sdg", [3, 4], frames=9, width=64, height=64, tokenizer=load_tokenizer(folder))
    out = tmp_path / "run"
    r = invoke("train", "decoder", "--tiny", "--data", sdg, "--tokenizer", folder, "--out", out, "--steps", 1,
               "--render-frames", 1, "--eval-every", 1, "--save-every", 1)
    assert r.exit_code == 0, r.output
    cfg = json.loads((out / "model" / "config.json").read_text())
    assert (cfg["latent_channels"], cfg["spatial_factor"], cfg["temporal_factor"], cfg["patch_size"]) == (8, 32, 8, 1)
    # the same data with another tokenizer's shape: one line
    wan = tmp_path / "wan"
    tiny_vae("AutoencoderKLWan").save_pretrained(wan)
    r = invoke("train", "decoder", "--tiny", "--data", sdg, "--tokenizer", wan, "--out", tmp_path / "run2")
    assert r.exit_code == 2 and "gives 4-channel latents with temporal factor 4" in r.stderr, r.output
    assert "holds 8-channel latents with temporal factor 8 and spatial factor 32" in r.stderr
    assert not (tmp_path / "run2").exists()


def test_bad_tokenizer_folders_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match="tokenizer folder not found"):
        load_tokenizer(tmp_path / "nowhere")
    image_vae = tmp_path / "sd_vae"  # a diffusers VAE, but of images
    diffusers.AutoencoderKL(block_out_channels=(8,), norm_num_groups=2, latent_channels=4).save_pretrained(image_vae)
    with pytest.raises(InputError, match="holds a diffusers AutoencoderKL, not a video VAE lyra3d reads; use a "
                                         "folder of AutoencoderKLWan"):
        load_tokenizer(image_vae)
    with pytest.raises(InputError, match="not a video VAE"):
        tokenizer_latent_shape(image_vae)
    broken = tmp_path / "broken"  # a Wan config without its weights
    tiny_vae("AutoencoderKLWan").save_pretrained(broken)
    for f in broken.glob("*.safetensors"):
        f.unlink()
    with pytest.raises(InputError, match=f"cannot load the AutoencoderKLWan in {broken}"):
        load_tokenizer(broken)


def test_generate_with_a_wan_vae_as_the_tokenizer_runs_end_to_end(tmp_path, make_weights, world_image, save_png,
                                                                   invoke):
    """A tiny Wan 2.1-shaped VAE (16 channels, 8x, 4x: the shipped video model's and decoder's shape) in
    --weights DIR/tokenizer."""
    weights = make_weights(tmp_path / "weights", text_to_image=False)
    tiny_vae("AutoencoderKLWan", channels=16).save_pretrained(weights / "tokenizer")
    image = save_png(world_image(), tmp_path / "world.png")
    out = tmp_path / "scene"
    r = invoke("generate", "--image", image, "--out", out, "--weights", weights, "--trajectories", "up", "--frames", 5,
               "--steps", 1, "--flythrough-frames", 2, "-q")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["models"]["tokenizer"]["path"] == str(weights / "tokenizer") and report["gaussians"] > 0


@pytest.mark.parametrize("part", ["video model", "decoder"])
def test_generate_with_a_vae_no_decoder_reads_is_one_line(part, tmp_path, make_weights, world_image, save_png, invoke,
                                                          assert_one_line_error):
    weights = make_weights(tmp_path / "weights", text_to_image=False)
    image = save_png(world_image(), tmp_path / "world.png")
    if part == "video model":  # LTX-Video's shape: no shipped part reads it; the video model is checked first
        tiny_vae("AutoencoderKLLTXVideo").save_pretrained(weights / "tokenizer")
        fragments = ["the video model expects 16-channel latents", "the tokenizer gives 8, 8 and 32",
                     "lyra3d train video-model --tokenizer DIR"]
    else:  # a 4-channel Wan VAE with a video model trained on it (here: a random one of that shape)
        from lyra3d.models.video_model import VideoDiffusionModel, VideoModelConfig

        tiny_vae("AutoencoderKLWan").save_pretrained(weights / "tokenizer")
        VideoDiffusionModel(VideoModelConfig(latent_channels=4, dim=32, depth=1, heads=2)).save_pretrained(
            weights / "video_model")
        fragments = ["the decoder reads 16-channel latents", "the tokenizer gives 4, 4 and 8",
                     "lyra3d train decoder --tokenizer DIR", "--weights DIR/decoder"]
    r = invoke("generate", "--image", image, "--out", tmp_path / "scene", "--weights", weights)
    assert_one_line_error(r.exit_code, r.stderr, *fragments)
    assert not (tmp_path / "scene").exists()


def test_decoder_config_for_latents_keeps_the_tokens_pixels():
    base = DecoderConfig()
    assert base.for_latents(LatentShape(16, 8, 4)) == base
    ltx = base.for_latents(LatentShape(128, 32, 8))
    assert (ltx.latent_channels, ltx.spatial_factor, ltx.temporal_factor) == (128, 32, 8)
    assert (ltx.patch_size, ltx.patch_px) == (1, 32)
    with pytest.raises(InputError, match="gaussian_stride 32 must divide the token's 16 pixels"):
        DecoderConfig(gaussian_stride=32).for_latents(LatentShape(4, 8, 4))
    assert not base.reads(LatentShape(16, 8, 8)) and base.reads(LatentShape(16, 8, 4))


def test_sdg_records_the_tokenizers_latent_shape(tmp_path):
    from lyra3d.data.sdg import sdg_latent_shape

    assert sdg_latent_shape(tmp_path) is None
    (tmp_path / "sdg.json").write_text(json.dumps({"latents": {"latent_channels": 128, "spatial_factor": 32,
                                                               "temporal_factor": 8}}))
    assert sdg_latent_shape(Path(tmp_path)) == LatentShape(128, 32, 8)
