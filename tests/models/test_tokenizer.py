import json

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.tokenizer import TokenizerConfig, VideoTokenizer
from lyra3d.train.tokenizer import TokenizerTrainConfig, train


def small() -> VideoTokenizer:
    torch.manual_seed(0)
    return VideoTokenizer(TokenizerConfig(base_channels=8)).eval()


def test_latent_shapes_follow_the_causal_layout():
    m = small()
    video = torch.rand(2, 9, 3, 32, 48)
    z = m.encode(video)
    assert z.shape == (2, 3, 16, 4, 6)  # 1 + (9 - 1) / 4 latent frames, 8x smaller, C = 16
    assert m.decode(z).shape == video.shape
    assert m.encode(video[:, :1]).shape == (2, 1, 16, 4, 6)  # an image is a one-frame video
    assert m.latent_frames(17) == 5


def test_encoding_is_causal():
    m = small()
    video = torch.rand(1, 9, 3, 32, 48)
    changed = video.clone()
    changed[:, 5:] = torch.rand_like(changed[:, 5:])  # only the last group of frames (5..8) changes
    with torch.no_grad():
        a, b = m.encode(video), m.encode(changed)
    assert torch.equal(a[:, :2], b[:, :2])  # the first frame's and the first group's latents are untouched
    assert not torch.equal(a[:, 2], b[:, 2])
    with torch.no_grad():
        da, db = m.decode(a), m.decode(b)
    assert torch.equal(da[:, :5], db[:, :5])  # decoding is causal too


@pytest.mark.parametrize("shape, message", [((1, 6, 3, 32, 48), "1 \\+ 4"), ((1, 5, 3, 30, 48), "multiple of 8"),
                                            ((5, 3, 32, 48), "must be")])
def test_bad_video_shapes(shape, message):
    with pytest.raises(InputError, match=message):
        small().encode(torch.rand(shape))


def test_the_tokenizer_learns_a_world_video():
    from lyra3d.core.metrics import psnr
    from lyra3d.data import worlds
    from lyra3d.models.tokenizer import reconstruction_loss
    from lyra3d.train.tokenizer import render_clips

    clip = render_clips(worlds.train_seeds(1), 5, 48, 32, torch.device("cpu"), None)[:2].float() / 255
    m = small().train()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    with torch.no_grad():
        before = psnr(m.decode(m.encode(clip)), clip).mean()
    for _ in range(80):
        loss = reconstruction_loss(m(clip), clip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = psnr(m.decode(m.encode(clip)), clip).mean()
    assert after > before + 5 and after > 18


def test_tiny_training_run_saves_and_resumes(tmp_path):
    config = TokenizerTrainConfig.tiny(str(tmp_path / "run"))
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert all(0 < r["loss"] < 10 for r in log if "loss" in r)
    assert [r["eval"]["psnr"] for r in log if "eval" in r]
    m = VideoTokenizer.from_pretrained(tmp_path / "run" / "model")
    assert m.config.base_channels == 8
    config.steps = 30
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"resumed_at_step": 20} in log and max(r.get("step", 0) for r in log) == 30


def test_a_diffusers_cosmos_vae_plugs_in_as_the_tokenizer(tmp_path):
    diffusers = pytest.importorskip("diffusers")
    from lyra3d.models.tokenizer import DiffusersVideoTokenizer, Tokenizer, load_tokenizer

    torch.manual_seed(0)
    # A tiny, randomly initialised Cosmos VAE built here (no download): 8x space, 4x time, 16 channels.
    vae = diffusers.AutoencoderKLCosmos(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
                                        attention_resolutions=(), resolution=64, num_layers=1, patch_size=4,
                                        spatial_compression_ratio=8, temporal_compression_ratio=4,
                                        latents_mean=None, latents_std=None, latent_channels=16)
    vae.save_pretrained(tmp_path / "cosmos")
    tok = load_tokenizer(tmp_path / "cosmos")
    assert isinstance(tok, DiffusersVideoTokenizer) and isinstance(tok, Tokenizer)
    video = torch.rand(1, 17, 3, 32, 48)
    z = tok.encode(video)
    assert z.shape == (1, 5, 16, 4, 6)  # the same layout as lyra3d's own tokenizer
    assert torch.equal(z, tok.encode(video))  # deterministic
    out = tok.decode(z)
    assert out.shape == video.shape and 0 <= out.min() and out.max() <= 1
    ours = small()
    assert ours.encode(video).shape == z.shape and isinstance(ours, Tokenizer)
    ours.save_pretrained(tmp_path / "ours")
    assert isinstance(load_tokenizer(tmp_path / "ours"), VideoTokenizer)
