import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.video_model import VideoDiffusionModel, VideoModelConfig, flow_matching_loss, sample

B, T, C, H, W = 2, 9, 16, 32, 48  # frames and pixels; latents: 3 x 16 x 4 x 6


def tiny() -> VideoDiffusionModel:
    torch.manual_seed(0)
    return VideoDiffusionModel(VideoModelConfig(dim=48, depth=2, heads=2))


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    lat = lambda: torch.randn(B, 3, C, H // 8, W // 8, generator=g)  # noqa: E731
    return lat(), lat(), lat(), torch.randn(B, T, 6, H, W, generator=g)


def test_velocity_shape_and_ray_tokens():
    m = tiny()
    x, cache, mask, rays = inputs()
    v = m(x, torch.rand(B), cache, mask, x[:, 0], rays)
    assert v.shape == x.shape
    tokens = m.ray_tokens(rays, 3)
    assert tokens.shape == (B, 3 * 2 * 3, 6 * 16 * 16)
    # Latent frame 0 sees frame 0's rays, latent frame 1 the mean ray map of frames 1..4 (16x16-pixel patches).
    assert torch.equal(tokens[:, 0], rays[:, 0, :, :16, :16].reshape(B, -1))
    assert torch.allclose(tokens[:, 6], rays[:, 1:5, :, :16, :16].mean(1).reshape(B, -1), atol=1e-6)
    with pytest.raises(InputError, match="multiple of the patch size"):
        m(x[..., :5], torch.rand(B), cache[..., :5], mask[..., :5], x[:, 0, ..., :5], rays)


def test_sampling_keeps_the_first_frame_and_is_seeded():
    m = tiny()
    x, cache, mask, rays = inputs()
    a = sample(m, x[:, 0], cache, mask, rays, steps=3, seed=1)
    b = sample(m, x[:, 0], cache, mask, rays, steps=3, seed=1)
    c = sample(m, x[:, 0], cache, mask, rays, steps=3, seed=2)
    assert a.shape == cache.shape
    assert torch.equal(a[:, 0], x[:, 0])
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_training_learns_to_follow_the_cache():
    # Data where the clean latents equal the cache latents: a model that reads its conditions can drive
    # the flow-matching loss well below the unconditional optimum.
    m = tiny().train()
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    losses = []
    for step in range(150):
        x0 = torch.randn(B, 3, C, H // 8, W // 8, generator=g)
        rays = torch.zeros(B, T, 6, H, W)
        loss = flow_matching_loss(m, x0, x0, torch.zeros_like(x0), rays, drop_prob=0.0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first
    assert m.ray_in.weight.grad is not None  # the zero-initialised ray embedding is trained


def test_save_and_load(tmp_path):
    m = tiny()
    m.save_pretrained(tmp_path / "vm")
    n = VideoDiffusionModel.from_pretrained(tmp_path / "vm")
    x, cache, mask, rays = inputs()
    s = torch.full((B,), 0.5)
    assert torch.equal(m.eval()(x, s, cache, mask, x[:, 0], rays), n(x, s, cache, mask, x[:, 0], rays))


def test_tiny_training_run_builds_data_and_resumes(tmp_path):
    import json

    from lyra3d.train.video_model import VideoModelTrainConfig, train

    config = VideoModelTrainConfig.tiny(str(tmp_path / "run"))
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"train_trajectories": 12, "eval_trajectories": 6} == {k: v for r in log for k, v in r.items()
                                                                  if k.endswith("_trajectories")}
    assert all(r["eval"]["flow_loss"] > 0 for r in log if "eval" in r)
    config.steps = 12
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"resumed_at_step": 10} in log and VideoDiffusionModel.from_pretrained(tmp_path / "run" / "model")
    with pytest.raises(InputError, match="--tokenizer DIR is required"):
        train(VideoModelTrainConfig(out=str(tmp_path / "x"), steps=1000))


def test_the_flow_sampler_integrates_exactly_and_guides():
    """Euler steps of dx/ds = v from s = 1 to 0: for v = x1 - x0 (a straight path) any step count lands on
    the data; guidance mixes the halves as v_u + g·(v_c − v_u); pin holds a slot fixed; steps < 1 refused."""
    from lyra3d.models.flow import euler_sample

    data = torch.tensor([[1.0, -2.0, 3.0]])
    noise = torch.tensor([[0.5, 0.5, 0.5]])
    straight = lambda x, s, drop: (noise - data).expand_as(x)  # noqa: E731
    for steps in (1, 3, 8):
        assert torch.allclose(euler_sample(noise, straight, steps), data, atol=1e-6)
    calls = []

    def two_halves(x, s, drop):
        calls.append(None if drop is None else drop.tolist())
        v = torch.zeros_like(x)
        if drop is not None:
            v[~drop] = 1.0  # conditioned velocity 1, unconditional 0
        return v

    out = euler_sample(torch.zeros(2, 3), two_halves, steps=2, guidance=3.0)
    assert torch.allclose(out, torch.full((2, 3), -3.0))  # ds = -1 in total, v = 0 + 3·(1 − 0)
    assert calls == [[False, False, True, True]] * 2
    pinned = euler_sample(noise.clone(), straight, 4, pin=lambda x: x.index_fill_(1, torch.tensor([0]), 7.0))
    assert pinned[0, 0] == 7.0 and torch.allclose(pinned[0, 1:], data[0, 1:], atol=1e-6)
    with pytest.raises(InputError, match="steps must be >= 1"):
        euler_sample(noise, straight, 0)
