"""The time-conditioned 3DGS decoder (lyra3d.models.decoder4d): shapes, that it starts as the static decoder,
that both times reach the output once trained, and checkpoints."""

import dataclasses
import json

import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera, plucker_rays
from lyra3d.core.trajectories import lyra_trajectories
from lyra3d.errors import InputError
from lyra3d.models.decoder import DecoderConfig, GaussianDecoder
from lyra3d.models.decoder4d import Decoder4DConfig, GaussianDecoder4D, latent_frame_times

SMALL = DecoderConfig(dim=32, depth=2, heads=2, gaussian_stride=8)
TIMES = torch.linspace(0, 4, 5)


def _inputs(v=2, t=5, w=128, h=64, seed=0):
    trajs = lyra_trajectories(default_camera(w, h), t, 4.0)
    cams = Cameras.cat([trajs[n] for n in list(trajs)[:v]])
    lat = torch.randn(1, v, 1 + (t - 1) // 4, 16, h // 8, w // 8, generator=torch.Generator().manual_seed(seed))
    return cams, lat, plucker_rays(cams).reshape(1, v, t, 6, h, w)


def _wake(model: GaussianDecoder4D, seed: int = 1) -> None:
    """Give the zero-initialised time layers random weights (as training would)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mlp in (model.source_time, model.target_time):
            mlp[2].weight.copy_(torch.randn(mlp[2].weight.shape, generator=g) * 0.5)


def test_latent_frame_times():
    t = torch.arange(9.0)
    assert torch.equal(latent_frame_times(t, 4), torch.tensor([0.0, 2.5, 6.5]))
    assert latent_frame_times(torch.zeros(2, 3, 17), 4).shape == (2, 3, 5)
    with pytest.raises(InputError, match="1 \\+ 4"):
        latent_frame_times(torch.zeros(8), 4)


def test_forward_and_decode_shapes():
    torch.manual_seed(0)
    model = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL)))
    cams, lat, rays = _inputs()
    raw = model(lat, rays, TIMES[None], torch.tensor([2.0]))
    assert raw.shape == (1, 2, 5, 8, 16, 12)
    assert torch.equal(raw, model(lat, rays, TIMES[None, None].expand(1, 2, 5), torch.tensor([2.0])))
    g = model.decode(lat[0], cams, TIMES, target_time=1.5)
    assert len(g) == 2 * 5 * 8 * 16
    assert g.times is not None and torch.equal(g.times, torch.full((len(g),), 1.5))
    with pytest.raises(InputError, match="times must be"):
        model(lat, rays, torch.zeros(1, 4), torch.tensor([0.0]))
    with pytest.raises(InputError, match="times must be"):
        model.decode(lat[0], cams, torch.zeros(3), 0.0)


def test_at_init_it_is_the_static_decoder():
    torch.manual_seed(0)
    static = GaussianDecoder(SMALL)
    torch.manual_seed(0)
    fresh = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL)))  # same draws for the shared layers
    lifted = GaussianDecoder4D.from_static(static)
    cams, lat, rays = _inputs()
    want = static(lat, rays)
    for model in (fresh, lifted):
        for target in (0.0, 1.0, 3.7):
            assert torch.equal(model(lat, rays, TIMES[None], torch.tensor([target])), want)
        assert torch.equal(model(lat, rays), want)  # no times at all: a static scene
    g4, g3 = lifted.decode(lat[0], cams, TIMES, 2.0), static.decode(lat[0], cams)
    assert torch.equal(g4.means, g3.means) and torch.equal(g4.sh, g3.sh) and g3.times is None


def test_both_times_reach_the_output_and_get_gradients():
    torch.manual_seed(0)
    model = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL)))
    cams, lat, rays = _inputs()
    with torch.no_grad():  # a trained head (the initial zero head hides every token from the output)
        model.head.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(2))
    # At init the time layers already get gradients (their last layer is zero, its input is not).
    loss = model(lat, rays, TIMES[None], torch.tensor([1.0]))[..., 0].sum()
    loss.backward()
    assert model.source_time[2].weight.grad.abs().sum() > 0 and model.target_time[2].weight.grad.abs().sum() > 0
    _wake(model)
    with torch.no_grad():
        a = model(lat, rays, TIMES[None], torch.tensor([0.0]))
        b = model(lat, rays, TIMES[None], torch.tensor([3.0]))
        c = model(lat, rays, TIMES.flip(0)[None], torch.tensor([0.0]))
    assert (a - b).abs().max() > 1e-3 and (a - c).abs().max() > 1e-3


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL), time_scale=0.5))
    _wake(model)
    model.save_pretrained(tmp_path / "d4")
    config = json.loads((tmp_path / "d4" / "config.json").read_text())
    assert config["model_type"] == "lyra3d-4dgs-decoder" and config["time_scale"] == 0.5
    back = GaussianDecoder4D.from_pretrained(tmp_path / "d4")
    assert back.config == model.config
    cams, lat, rays = _inputs()
    with torch.no_grad():
        assert torch.equal(back(lat, rays, TIMES[None], torch.tensor([2.5])),
                           model.eval()(lat, rays, TIMES[None], torch.tensor([2.5])))
    with pytest.raises(InputError, match="different kind"):
        GaussianDecoder.from_pretrained(tmp_path / "d4")
    GaussianDecoder(SMALL).save_pretrained(tmp_path / "d3")
    with pytest.raises(InputError, match="different kind"):
        GaussianDecoder4D.from_pretrained(tmp_path / "d3")


def test_the_input_view_joins_as_one_more_view_with_its_own_embedding():
    torch.manual_seed(0)
    model = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL), input_view=True))
    with torch.no_grad():
        model.head.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(2))
    cams, lat, rays = _inputs(v=3)  # two trajectories + the "input video" (here a third trajectory)
    with torch.no_grad():
        marked = model(lat, rays, TIMES[None], torch.tensor([1.0]), True)
        plain = model(lat, rays, TIMES[None], torch.tensor([1.0]))
        assert (marked - plain).abs().max() > 1e-4  # the last view is told apart ...
        model.view.weight[-1] = model.view.weight[2]
        assert torch.equal(model(lat, rays, TIMES[None], torch.tensor([1.0]), True), plain)  # ... by that alone
    t = 5
    g = model.decode(lat[0, :2], cams[:2 * t], TIMES, 1.0, input_latents=lat[0, 2], input_cameras=cams[2 * t:])
    assert len(g) == 3 * t * 8 * 16
    with torch.no_grad():
        assert torch.equal(model.activate(model(lat, rays, TIMES[None], torch.tensor([1.0]), True)[0].flatten(0, 1),
                                          cams).means, g.means)
    with pytest.raises(InputError, match="also reads the input video"):
        model.decode(lat[0, :2], cams[:2 * t], TIMES, 1.0)
    with pytest.raises(InputError, match="do not match one trajectory"):
        model.decode(lat[0, :2], cams[:2 * t], TIMES, 1.0, input_latents=lat[0, 2, :1], input_cameras=cams[2 * t:])
    old = GaussianDecoder4D(Decoder4DConfig(**dataclasses.asdict(SMALL)))  # without input_view: inputs are ignored
    assert len(old.decode(lat[0, :2], cams[:2 * t], TIMES, 1.0, input_latents=lat[0, 2],
                          input_cameras=cams[2 * t:])) == 2 * t * 8 * 16


def test_the_time_code_spans_the_procedural_clips_horizon():
    """The 4D decoder's time unit is its own config value; it must match the clips it was trained on."""
    from lyra3d.data.worlds import DYNAMIC_HORIZON
    from lyra3d.models.decoder4d import Decoder4DConfig

    assert Decoder4DConfig().time_scale == pytest.approx(1.0 / DYNAMIC_HORIZON)
