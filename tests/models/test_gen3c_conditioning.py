"""GEN3C's conditioning (lyra3d.models.gen3c_conditioning) against hand-written expectations of the official code."""

from __future__ import annotations

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.gen3c_conditioning import (
    augment_condition_frames,
    buffer_pixel_noise,
    condition_indicator,
    condition_input_mask,
    condition_output,
    condition_video,
    cosmos_encoder,
    encode_buffers,
    guided,
    mask_video,
    network_input,
)


def test_mask_video_is_two_m_minus_one_on_three_channels():
    m = torch.tensor([[[[0.0, 1.0], [1.0, 0.0]]]])  # (1, 1, 2, 2)
    v = mask_video(m)
    assert v.shape == (1, 3, 2, 2)
    assert torch.equal(v[0, 2], torch.tensor([[-1.0, 1.0], [1.0, -1.0]]))
    with pytest.raises(InputError, match="one channel"):
        mask_video(torch.zeros(1, 3, 2, 2))


def _toy_encoder(video):
    """A stand-in tokenizer: (B, 3, T, H, W) → (B, 2, 1 + (T-1)/4, H/2, W/2): frames 0, 4, 8, ..., 2x2 means, two
    channels (the rgb mean and the red channel)."""
    v = torch.nn.functional.avg_pool3d(video[:, :, ::4], (1, 2, 2))
    return torch.cat([v.mean(1, keepdim=True), v[:, :1]], dim=1)


def test_buffers_are_rgb_then_mask_latents_per_buffer_zeros_for_missing_ones():
    g = torch.Generator().manual_seed(0)
    b, t, h, w = 1, 5, 4, 4
    pix = torch.rand(b, t, 2, 3, h, w, generator=g) * 2 - 1
    masks = (torch.rand(b, t, 2, 1, h, w, generator=g) > 0.5).float()
    one = encode_buffers(_toy_encoder, pix[:, :, :1], masks[:, :, :1], frame_buffer_max=2)
    assert one.shape == (1, 8, 2, 2, 2)
    # buffer 0: its warped rgb, then its mask encoded as a video 2m-1 on 3 channels (not a resized mask)
    assert torch.allclose(one[:, 0:2], _toy_encoder(pix[:, :, 0].permute(0, 2, 1, 3, 4)))
    mvid = (masks[:, :, 0] * 2 - 1).expand(-1, -1, 3, -1, -1).permute(0, 2, 1, 3, 4)
    assert torch.allclose(one[:, 2:4], _toy_encoder(mvid))
    assert one[:, 0, 1, 0, 0] == pytest.approx(float(pix[0, 4, 0, :, 0:2, 0:2].mean()))  # latent frame 1 = frame 4
    assert torch.count_nonzero(one[:, 4:]) == 0  # the second buffer slot is empty: zeros
    two = encode_buffers(_toy_encoder, pix, masks, frame_buffer_max=2)
    assert torch.allclose(two[:, :4], one[:, :4])
    assert torch.allclose(two[:, 4:6], _toy_encoder(pix[:, :, 1].permute(0, 2, 1, 3, 4)))
    with pytest.raises(InputError, match="1 to 2 warped buffers"):
        encode_buffers(_toy_encoder, torch.zeros(1, 5, 3, 3, 4, 4), torch.zeros(1, 5, 3, 1, 4, 4))
    with pytest.raises(InputError, match="warped masks"):
        encode_buffers(_toy_encoder, pix, masks[:, :, :1])


def test_buffers_through_the_cosmos_tokenizer_are_its_normalised_latents_times_sigma_data():
    diffusers = pytest.importorskip("diffusers")
    from lyra3d.models.diffusers_vae import DiffusersVideoTokenizer

    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLCosmos(encoder_block_out_channels=(8, 8, 8, 8), decode_block_out_channels=(8, 8, 8, 8),
                                        attention_resolutions=(), resolution=64, num_layers=1, latent_channels=4,
                                        latents_mean=[0.01 * i for i in range(8)],
                                        latents_std=[1 + 0.02 * i for i in range(8)])
    tok = DiffusersVideoTokenizer(vae, tiling=False)
    enc = cosmos_encoder(tok)
    g = torch.Generator().manual_seed(1)
    pix = torch.rand(1, 9, 1, 3, 16, 16, generator=g) * 2 - 1
    masks = (torch.rand(1, 9, 1, 1, 16, 16, generator=g) > 0.3).float()
    buf = encode_buffers(enc, pix, masks)
    assert buf.shape == (1, 2 * 2 * 4, 2, 2, 2)
    with torch.no_grad():
        raw = vae.encode((masks[:, :, 0] * 2 - 1).expand(-1, -1, 3, -1, -1).permute(0, 2, 1, 3, 4)).latent_dist.mode()
    mean = torch.tensor([0.01 * i for i in range(8)]).view(1, 4, 2, 1, 1)
    std = torch.tensor([1 + 0.02 * i for i in range(8)]).view(1, 4, 2, 1, 1)
    assert torch.allclose(buf[:, 4:8], (raw - mean) / std * 0.5, atol=1e-5)


def test_pixel_noise_grows_towards_the_older_buffers():
    pix = torch.zeros(1, 3, 2, 3, 64, 64)
    noisy = buffer_pixel_noise(pix, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(noisy[:, :, 1], pix[:, :, 1])  # the last buffer: std 0
    assert float(noisy[:, :, 0].std()) == pytest.approx(0.5, rel=0.05)  # buffer 0 of 2: std (2-1-0)*0.5
    assert torch.equal(buffer_pixel_noise(pix[:, :, :1], 0.5), pix[:, :, :1])  # one buffer: exact


def test_condition_video_indicator_and_mask():
    img = torch.rand(1, 3, 8, 8) * 2 - 1
    v = condition_video(img, 17)
    assert v.shape == (1, 3, 17, 8, 8) and torch.equal(v[:, :, 0], img) and torch.count_nonzero(v[:, :, 1:]) == 0
    ind = condition_indicator(3, 1)
    assert ind.flatten().tolist() == [1.0, 0.0, 0.0]
    m = condition_input_mask(ind, 2, 4, 5)
    assert m.shape == (2, 1, 3, 4, 5) and m[:, :, 0].min() == 1 and m[:, :, 1:].max() == 0
    assert torch.count_nonzero(condition_input_mask(ind, 2, 4, 5, video_cond_bool=False)) == 0
    with pytest.raises(InputError, match="num_condition_t"):
        condition_indicator(3, 4)


def test_condition_frames_are_augmented_and_rescaled_until_sigma_reaches_the_augment_sigma():
    xt = torch.full((1, 1, 2, 1, 1), 7.0)
    gt = torch.full((1, 1, 2, 1, 1), 2.0)
    noise = torch.full((1, 1, 2, 1, 1), 3.0)
    ind = condition_indicator(2, 1)
    new, ind2 = augment_condition_frames(xt, 10.0, gt, ind, noise, augment_sigma=0.1)
    c = lambda s: 1 / (s * s + 0.25) ** 0.5  # noqa: E731
    assert float(new[0, 0, 0]) == pytest.approx((2 + 3 * 0.1) * c(0.1) / c(10.0), rel=1e-5)
    assert float(new[0, 0, 1]) == 7.0 and torch.equal(ind2, ind)
    late, ind3 = augment_condition_frames(xt, 0.05, gt, ind, noise, augment_sigma=0.1)
    assert torch.equal(late, xt) and torch.count_nonzero(ind3) == 0


def test_condition_output_makes_the_denoised_estimate_the_clean_latent():
    xt, gt, s = torch.randn(1, 2, 3, 2, 2), torch.randn(1, 2, 3, 2, 2), 4.0
    out = condition_output(gt, xt, s)
    c_skip, c_out = 0.25 / (s * s + 0.25), s * 0.5 / (s * s + 0.25) ** 0.5
    assert torch.allclose(c_skip * xt + c_out * out, gt, atol=1e-5)


def test_network_input_order_and_guidance():
    x, m, b = torch.ones(1, 2, 3, 2, 2), torch.zeros(1, 1, 3, 2, 2), torch.full((1, 4, 3, 2, 2), 5.0)
    inp = network_input(x, m, b)
    assert inp.shape == (1, 7, 3, 2, 2) and inp[:, :2].eq(1).all() and inp[:, 2].eq(0).all() and inp[:, 3:].eq(5).all()
    assert network_input(x, m, b, drop_buffers=True)[:, 3:].eq(0).all()
    with pytest.raises(InputError, match="do not match"):
        network_input(x, m, b[:, :, :2])
    assert torch.equal(guided(torch.tensor(3.0), torch.tensor(1.0), 1.0), torch.tensor(5.0))


def test_build_condition_from_lyra3d_conventions():
    from lyra3d.models.gen3c_sampling import build_condition

    g = torch.Generator().manual_seed(3)
    rgb = torch.rand(9, 1, 3, 8, 8, generator=g)
    mask = (torch.rand(9, 1, 1, 8, 8, generator=g) > 0.5).float()
    image = torch.rand(3, 8, 8, generator=g)
    text = torch.zeros(1, 2, 4)
    cond = build_condition(_toy_encoder, image, rgb, mask, text, text)
    pix = torch.where(mask > 0, rgb * 2 - 1, -torch.ones_like(rgb))  # holes at -1, as forward_warp writes them
    assert torch.allclose(cond.buffers, encode_buffers(_toy_encoder, pix[None], mask[None]))
    want = torch.zeros(1, 3, 9, 8, 8)
    want[:, :, 0] = image * 2 - 1
    assert torch.allclose(cond.gt_latent, _toy_encoder(want))
    assert cond.indicator.flatten().tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(InputError, match="does not match"):
        build_condition(_toy_encoder, image[:, :4], rgb, mask, text, text)
