"""Lyra-1's official decoder in lyra3d (lyra3d.models.lyra1_decoder): key-for-key equality with the official
module (the committed reference lists), the head's chunking, the official activations and pruning, the
conversion to lyra3d Gaussians, save/load, and a whole decode with a small tokenizer."""

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lyra3d.core.cameras import Cameras, default_camera, look_at
from lyra3d.core.gaussians import sh_to_rgb
from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.lyra1_decoder import Lyra1Decoder, gaussian_rays, official_plucker, prune_gaussians, to_gaussians
from lyra3d.models.modeling import load_pretrained

DATA = Path(__file__).resolve().parents[2] / "src" / "lyra3d" / "models" / "data"
TINY = Lyra1DecoderConfig(dim=32, depth=4, heads=4, transformer_every=2, mamba_d_state=8, mamba_headdim=16,
                          mamba_chunk_size=16, head_chunk_frames=3)


@pytest.mark.parametrize("variant", ["static", "dynamic"])
def test_state_dict_equals_the_official_reference(variant):
    ref = json.loads((DATA / f"lyra1_decoder_keys_{variant}.json").read_text())
    with torch.device("meta"):  # real size, nothing allocated
        model = Lyra1Decoder(Lyra1DecoderConfig(dynamic=variant == "dynamic"))
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(ours.items()) == list(ref["keys"].items())  # names, shapes and order
    assert sum(math.prod(s) for s in ours.values()) == ref["parameters"] == 32_753_996
    kinds = ["attn" if hasattr(b, "attn") else "mamba" for b in model.enc_blocks]
    assert kinds == (["mamba"] * 7 + ["attn"]) * 2  # the 7 Mamba2 : 1 transformer pattern


def tiny_inputs(cfg, b=1, v=2, tl=3, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    t = 1 + cfg.temporal_compression * (tl - 1)
    c = cfg.latent_channels
    latents = torch.randn(b, v, tl, c, h, w, generator=g)
    plucker = torch.randn(b, v, tl, 2 * c, h, w, generator=g)
    rays_o = torch.randn(b, v, t, 3, 1, 1, generator=g).expand(b, v, t, 3, h, w).contiguous()
    rays_d = F.normalize(torch.randn(b, v, t, 3, h, w, generator=g), dim=3)
    times = torch.randn(b, tl, c, h, w, generator=g), torch.randn(b, 1, c, h, w, generator=g)
    return latents, plucker, rays_o, rays_d, times


def randomised(cfg, seed=0):
    torch.manual_seed(seed)
    model = Lyra1Decoder(cfg).eval()
    with torch.no_grad():  # the zero-initialised embeddings too, so every input matters
        for name, p in model.named_parameters():
            if not name.endswith(("A_log", "dt_bias")):
                p.add_(0.2 * torch.randn_like(p))
    return model


def test_head_chunks_equal_the_whole_transposed_convolution():
    model = randomised(TINY)
    latents, plucker, rays_o, rays_d, _ = tiny_inputs(TINY, tl=4)
    with torch.no_grad():
        whole = model.deconv(torch.randn(2, TINY.dim, 4, 2, 3))  # the official head: one ConvTranspose3d
    assert whole.shape[2] == model.frames(4) == 1 + 8 * 3  # every decoded frame
    outs = []
    for chunk in (1, 3, 8, 100):
        model.config = replace(TINY, head_chunk_frames=chunk)
        with torch.no_grad():
            outs.append(model(latents, plucker, rays_o, rays_d, prune=False))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-6, rtol=1e-6)
    # ... and the chunked head equals the module applied whole, activated
    grid = torch.randn(2, TINY.dim, 4, 2, 3)
    tokens = grid.flatten(2).transpose(1, 2)
    ro, rd = rays_o.flatten(0, 1), rays_d.flatten(0, 1)
    with torch.no_grad():
        got = model.head(tokens, ro, rd, 4, 2, 3)
        raw = model.deconv(grid).permute(0, 2, 3, 4, 1)
        want = model.activate(raw, ro.permute(0, 1, 3, 4, 2), rd.permute(0, 1, 3, 4, 2)).flatten(1, 3)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_official_activations():
    model = Lyra1Decoder(TINY)
    raw = torch.zeros(1, 12)
    raw[0, 7:11] = torch.tensor([2.0, 0, 0, 0])
    o, d = torch.tensor([[1.0, 2.0, 3.0]]), torch.tensor([[0.0, 0.0, 1.0]])
    g = model.activate(raw, o, d)[0]
    w = 1 / (1 + math.exp(1.65))
    depth = 0.1 * (1 - w) + 500 * w
    torch.testing.assert_close(g[:3], torch.tensor([1.0, 2.0, 3.0 + depth]))
    assert g[3].item() == pytest.approx(1 / (1 + math.exp(2)))  # sigmoid(x - 2)
    torch.testing.assert_close(g[4:7], torch.full((3,), 0.3 / math.e))  # exp(x - (1 - ln 0.3)), capped at 0.3
    torch.testing.assert_close(g[7:11], torch.tensor([1.0, 0, 0, 0]))
    torch.testing.assert_close(g[11:], torch.full((3,), 0.5))  # 0.5·tanh(x) + 0.5
    big = model.activate(torch.full((1, 12), 50.0), o, d)[0]
    assert big[4:7].max().item() == pytest.approx(0.3) and big[2].item() == pytest.approx(3 + 500, rel=1e-4)


def test_to_gaussians_keeps_colours_sizes_and_opacities():
    g = torch.rand(50, 14)
    g[:, 4:7] = g[:, 4:7] * 0.3 + 1e-3
    g[:, 7:11] = F.normalize(torch.randn(50, 4), dim=-1)
    out = to_gaussians(g)
    torch.testing.assert_close(out.means, g[:, :3])
    torch.testing.assert_close(out.scales.exp(), g[:, 4:7])
    torch.testing.assert_close(torch.sigmoid(out.opacities), g[:, 3].clamp(1e-6, 1 - 1e-6), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(sh_to_rgb(out.sh[:, 0]), g[:, 11:], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.quats, g[:, 7:11])


def test_pruning_keeps_the_most_opaque_share():
    g = torch.rand(1, 1000, 14)
    kept = prune_gaussians(g, 0.8)
    n = int(1000 * (1 - 0.8))  # the official float arithmetic: int(1000 · 0.19999999999999996) = 199
    assert kept.shape == (1, n, 14) and n == 199
    assert kept[0, :, 3].min() >= g[0, :, 3].sort(descending=True).values[n - 1]
    assert prune_gaussians(g, 0.0) is g
    mixed = prune_gaussians(g, 0.5, 0.5, torch.Generator().manual_seed(0))
    assert mixed.shape[1] == 250 + 250
    top = g[0, :, 3].sort(descending=True).values
    assert (mixed[0, :250, 3] == top[:250]).all() and mixed[0, 250:, 3].max() <= top[249]


def test_forward_shapes_time_and_pruning():
    cfg = replace(TINY, prune_ratio=0.5)
    static = randomised(cfg)
    latents, plucker, rays_o, rays_d, (t_in, t_tgt) = tiny_inputs(cfg)
    with torch.no_grad():
        full = static(latents, plucker, rays_o, rays_d, prune=False)
        pruned = static(latents, plucker, rays_o, rays_d)
    assert full.shape == (1, 2 * 17 * 4 * 6, 14)  # 2 trajectories × 17 frames × (4/2·2) × (6/2·2)
    assert pruned.shape == (1, full.shape[1] // 2, 14) and torch.isfinite(full).all()
    dynamic = Lyra1Decoder(replace(cfg, dynamic=True)).eval()
    dynamic.load_state_dict(static.state_dict())
    with torch.no_grad():
        a = dynamic(latents, plucker, rays_o, rays_d, t_in, t_tgt, prune=False)
        b = dynamic(latents, plucker, rays_o, rays_d, t_in, t_tgt + 1, prune=False)
    assert (a - full).abs().max() > 1e-4 and (a - b).abs().max() > 1e-4  # the times are read
    with pytest.raises(Exception, match="time_latents"):
        dynamic(latents, plucker, rays_o, rays_d)
    with pytest.raises(Exception, match="rays_o must be"):
        static(latents, plucker, rays_o[:, :, :-1], rays_d)


def test_save_and_load_round_trip(tmp_path):
    model = randomised(replace(TINY, dynamic=True))
    model.save_pretrained(tmp_path / "lyra1")
    config = json.loads((tmp_path / "lyra1" / "config.json").read_text())
    assert config["model_type"] == "lyra1-3dgs-decoder" and config["dynamic"] is True
    loaded = load_pretrained(tmp_path / "lyra1")
    assert type(loaded) is Lyra1Decoder and loaded.config == model.config
    latents, plucker, rays_o, rays_d, times = tiny_inputs(TINY)
    with torch.no_grad():
        torch.testing.assert_close(loaded(latents, plucker, rays_o, rays_d, *times),
                                   model(latents, plucker, rays_o, rays_d, *times))


def small_encoder(c=16):
    """A fixed small video tokenizer (8x8x8 like Cosmos'): frame 0 alone, then means over 8 frames and 8x8
    pixels, a fixed channel map to ``c`` channels."""
    mix = torch.randn(3, c, generator=torch.Generator().manual_seed(5))

    def encode(video):  # (N, T, 3, H, W) -> (N, 1 + (T-1)/8, c, H/8, W/8)
        n, t, _, h, w = video.shape
        first = video[:, :1]
        rest = video[:, 1:].reshape(n, (t - 1) // 8, 8, 3, h, w).mean(2)
        pooled = F.avg_pool2d(torch.cat([first, rest], 1).flatten(0, 1).float(), 8)
        return torch.einsum("nchw,cd->ndhw", pooled, mix).reshape(n, -1, c, h // 8, w // 8)

    return encode


def trajectory(v, t, width=96, height=64):
    cams = []
    base = default_camera(width, height)
    for i in range(v):
        eyes = torch.stack([torch.tensor([0.1 * i + 0.02 * k, 0.0, 0.0]) for k in range(t)])
        w2c = torch.linalg.inv(look_at(eyes, torch.tensor([[0.0, 0.0, 5.0]]).expand(t, 3)))
        cams.append(Cameras(w2c, base.intrinsics.expand(t, 4), width, height))
    return Cameras.cat(cams)


def test_decode_one_scene_puts_gaussians_on_the_frames_rays():
    cfg = replace(TINY, prune_ratio=0.0)
    model = randomised(cfg)
    cams = trajectory(2, 9)
    latents = torch.randn(2, 2, 16, 8, 12)  # 2 trajectories, 2 latent frames (9 frames) of 64x96
    g = model.decode(latents, cams, encode=small_encoder())
    assert g.means.shape == (2 * 9 * 8 * 12, 3) and g.sh.shape[1] == 1 and torch.isfinite(g.means).all()
    # each Gaussian lies on its 8x8 block's ray in its own frame's camera, between near and far
    o, d = gaussian_rays(cams, 8)
    o, d = o.permute(0, 2, 3, 1).reshape(-1, 3), d.permute(0, 2, 3, 1).reshape(-1, 3)
    along = ((g.means - o) * d).sum(-1)
    torch.testing.assert_close(o + d * along[:, None], g.means, atol=1e-3, rtol=1e-4)
    assert along.min() >= 0.1 - 1e-4 and along.max() <= 500
    # the official Plücker order: o x d, then d
    p = official_plucker(cams[:1])
    torch.testing.assert_close(p[0, 3:].permute(1, 2, 0).norm(dim=-1), torch.ones(64, 96))
    with pytest.raises(Exception, match="encode"):
        model.decode(latents, cams)
    with pytest.raises(Exception, match="cameras"):
        model.decode(latents, cams[:17], encode=small_encoder())
    dyn = Lyra1Decoder(replace(cfg, dynamic=True)).eval()
    dyn.load_state_dict(model.state_dict())
    gd = dyn.decode(latents, cams, encode=small_encoder(), times=torch.linspace(0, 1, 9), target_time=0.5)
    assert gd.times is not None and (gd.times == 0.5).all() and len(gd.means) == len(g.means)


def test_pixel_plucker_variant_reads_the_rays_themselves():
    """plucker_from_latents off: the rays of every frame through a pixel patch of 8 frames × 16 × 16 (padded in
    time by 4), one token per latent patch as with the tokenizer's latents."""
    cfg = replace(TINY, plucker_from_latents=False)
    model = randomised(cfg)
    assert tuple(model.patch_plucker_embed.proj.weight.shape) == (cfg.dim, 6, 8, 16, 16)
    latents, _, rays_o, rays_d, _ = tiny_inputs(cfg)
    rays = torch.randn(1, 2, 17, 6, 32, 48)
    with torch.no_grad():
        a = model(latents, rays, rays_o, rays_d, prune=False)
        b = model(latents, rays * 2, rays_o, rays_d, prune=False)
    assert a.shape == (1, 2 * 17 * 4 * 6, 14) and (a - b).abs().max() > 1e-4
    with pytest.raises(Exception, match="Plücker input must be"):
        model(latents, rays[:, :, :-1], rays_o, rays_d)
