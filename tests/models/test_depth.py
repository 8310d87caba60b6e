import json

import numpy as np
import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.depth import (
    DepthEstimator,
    DepthNet,
    DepthNetConfig,
    FileDepth,
    NetworkDepth,
    load_depth_file,
    normalize_scene_scale,
)
from lyra3d.train.depth import DepthTrainConfig, train


def test_depth_files_round_trip(tmp_path):
    d = (torch.rand(24, 40) * 10 + 0.5).numpy().astype(np.float32)
    np.save(tmp_path / "d.npy", d)
    np.savez(tmp_path / "d.npz", depth=d)
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "d.png", (d * 1000).astype(np.uint16))
    assert torch.equal(load_depth_file(tmp_path / "d.npy")[0, 0], torch.from_numpy(d))
    assert torch.equal(load_depth_file(tmp_path / "d.npz")[0, 0], torch.from_numpy(d))
    png = load_depth_file(tmp_path / "d.png")[0, 0]
    assert (png - torch.from_numpy(d)).abs().max() <= 1e-3  # millimetre quantisation


def test_bad_depth_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_depth_file(tmp_path / "none.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(InputError, match="cannot read depth file"):
        load_depth_file(tmp_path / "bad.npy")
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 4, 5), np.float32))
    with pytest.raises(InputError, match="expected \\(H, W\\)"):
        load_depth_file(tmp_path / "cube.npy")
    (tmp_path / "d.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(InputError, match="unsupported depth file"):
        load_depth_file(tmp_path / "d.jpg")
    np.save(tmp_path / "small.npy", np.ones((4, 4), np.float32))
    with pytest.raises(InputError, match="give a depth map of the image's size"):
        FileDepth(tmp_path / "small.npy")(torch.rand(1, 3, 8, 8))


def test_scale_normalisation():
    d = torch.tensor([[1.0, 2.0, 4.0]])
    out, f = normalize_scene_scale(d, metric=False, target_median=1.0)
    assert f == pytest.approx(0.5) and out.median() == pytest.approx(1.0)
    same, f = normalize_scene_scale(d, metric=True)
    assert same is d and f == 1.0


def test_network_estimator_any_size_and_interface():
    net = NetworkDepth(DepthNet(DepthNetConfig(base_channels=8, levels=3, height=32, width=48)))
    assert isinstance(net, DepthEstimator)
    out = net(torch.rand(2, 3, 45, 70))
    assert out.depth.shape == (2, 1, 45, 70) and out.metric and (out.depth > 0).all()
    with pytest.raises(InputError, match="images must be"):
        net(torch.rand(3, 8, 8))


def test_tiny_training_learns_and_resumes(tmp_path):
    config = DepthTrainConfig.tiny(str(tmp_path / "run"))
    config.steps = 20
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert losses and all(np.isfinite(losses))
    model = DepthNet.from_pretrained(tmp_path / "run" / "model")
    assert model.config.base_channels == 8
    # Resume: continues from step 20, not from 0.
    config.steps = 30
    train(config)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert {"resumed_at_step": 20} in log
    assert max(r["step"] for r in log if "loss" in r) == 30


def test_missing_checkpoint_is_one_line(tmp_path):
    with pytest.raises(InputError, match="no lyra3d-depth-unet checkpoint in"):
        DepthNet.from_pretrained(tmp_path)


def test_shipped_depth_network_on_held_out_worlds():
    from lyra3d.data import worlds
    from lyra3d.train.depth import evaluate_estimator

    torch.manual_seed(0)
    scores = evaluate_estimator(NetworkDepth.from_pretrained(), worlds.eval_seeds(6), views=2)
    print(f"shipped depth net on 6 held-out worlds x 2 views: {scores}")
    assert scores["abs_rel"] <= 0.10 and scores["delta1"] >= 0.90
