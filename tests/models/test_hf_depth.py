"""Depth from a transformers folder (:mod:`lyra3d.models.hf_depth`): tiny random Depth Anything and DPT models built
here, saved with ``save_pretrained`` and loaded through the real code; the relative-depth convention against a
procedural world's true depth; one-line errors for folders that are not (complete) depth models."""

from pathlib import Path

import pytest
import torch

from lyra3d.core.cameras import default_camera
from lyra3d.errors import InputError
from lyra3d.models.depth import DepthEstimator, NetworkDepth
from lyra3d.models.hf_depth import (
    RELATIVE_MEDIAN_DEPTH, SKY_RATIO, TransformersDepth, inverse_depth_to_depth, load_depth)

transformers = pytest.importorskip("transformers")


def tiny_dpt(folder: Path) -> Path:
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    torch.manual_seed(1)
    config = DPTConfig(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8, backbone_out_indices=[0, 1, 2, 3], neck_hidden_sizes=[8, 8, 16, 16],
                       fusion_hidden_size=16, head_in_index=-1)
    model = DPTForDepthEstimation(config)
    with torch.no_grad():
        model.head.head[-2].bias.fill_(0.5)  # the conv before the final ReLU
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def relative_folder(tmp_path_factory, tiny_depth_anything):
    return tiny_depth_anything(tmp_path_factory.mktemp("da_relative"))


# -- the convention -------------------------------------------------------------------------------------------
def test_a_worlds_inverse_depth_comes_back_as_its_z_depth():
    """A procedural world's true z-depth, given as a relative model's output (inverse depth at an arbitrary scale),
    comes back as the world's z-depth up to one factor: the one that puts its median at RELATIVE_MEDIAN_DEPTH.
    The sky (1000 m, beyond SKY_RATIO × the near depth) comes back unknown (0)."""
    from lyra3d.data import worlds
    from lyra3d.data.worlds.scene import SKY_DEPTH

    truth = worlds.render(worlds.make_world(1_000_007), default_camera(160, 88)).depth  # (1, 1, H, W)
    sky = truth >= SKY_DEPTH
    assert 0.2 < sky.float().mean() < 0.8  # the test means something: sky and scene both present
    depth, factors = inverse_depth_to_depth(0.37 / truth)
    scene = ~sky
    expected = truth * RELATIVE_MEDIAN_DEPTH / truth[scene].median()
    torch.testing.assert_close(depth[scene], expected[scene], rtol=1e-5, atol=1e-5)
    assert (depth[sky] == 0).all()
    assert float(depth[depth > 0].median()) == pytest.approx(RELATIVE_MEDIAN_DEPTH, rel=1e-5)
    assert factors[0] == pytest.approx(0.37 * RELATIVE_MEDIAN_DEPTH / float(truth[scene].median()), rel=1e-5)


def test_unknown_inverse_depth_and_per_image_scale():
    inverse = torch.tensor([[[[2.0, 1.0, 0.0, -1.0]]], [[[4.0, 8.0, 4.0, float("nan")]]]])
    depth, factors = inverse_depth_to_depth(inverse, target_median=1.0)
    assert depth[0, 0, 0, 2:].eq(0).all() and depth[1, 0, 0, 3] == 0  # <= 0 and NaN: unknown
    assert float(depth[0][depth[0] > 0].median()) == pytest.approx(1.0)  # each image at its own median
    assert float(depth[1][depth[1] > 0].median()) == pytest.approx(1.0)
    assert depth[0, 0, 0, 1] / depth[0, 0, 0, 0] == pytest.approx(2.0)  # z = factor / d
    assert len(factors) == 2
    far = torch.tensor([[[[1.0] * 20 + [1.0 / (2 * SKY_RATIO)]]]])  # one pixel beyond the sky ratio
    assert inverse_depth_to_depth(far)[0][0, 0, 0, -1] == 0
    with pytest.raises(InputError, match="no positive inverse depth"):
        inverse_depth_to_depth(torch.zeros(1, 1, 4, 4))


# -- the estimator, end to end ------------------------------------------------------------------------------------
def test_relative_depth_anything_end_to_end(relative_folder, world_image):
    est = load_depth(relative_folder)
    assert isinstance(est, TransformersDepth) and isinstance(est, DepthEstimator)
    assert not est.metric and est.max_depth is None
    images = torch.stack([world_image(96, 56), world_image(96, 56, seed=1_000_008)])
    result = est(images, default_camera(96, 56).intrinsics.expand(2, -1))
    assert result.depth.shape == (2, 1, 56, 96) and result.depth.dtype == torch.float32 and not result.metric
    assert torch.isfinite(result.depth).all() and (result.depth >= 0).all()
    for d in result.depth:  # the convention: each image's known depths have the median RELATIVE_MEDIAN_DEPTH
        assert (d > 0).float().mean() > 0.5
        assert float(d[d > 0].median()) == pytest.approx(RELATIVE_MEDIAN_DEPTH, rel=1e-4)
    rec = result.record
    assert rec["kind"] == "relative" and rec["model"] == "DepthAnythingForDepthEstimation"
    assert rec["model_type"] == "depth_anything" and rec["folder"] == str(relative_folder)
    assert "inverse depth -> z-depth" in rec["done"] and f"median scaled to {RELATIVE_MEDIAN_DEPTH:g}" in rec["done"]
    assert rec["model_input"][0] % 14 == 0 and len(rec["scale_factor"]) == 2
    # the same inverse depth the model gives, converted by the pure function, is what the estimator returns
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(relative_folder, local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(relative_folder, local_files_only=True)
    with torch.no_grad():
        out = model(**proc(images=list(images), do_rescale=False, return_tensors="pt"))
    inv = torch.stack([d["predicted_depth"] for d in proc.post_process_depth_estimation(out, [(56, 96)] * 2)])
    torch.testing.assert_close(result.depth, inverse_depth_to_depth(inv[:, None])[0])


def test_metric_depth_anything_keeps_metres(tmp_path, world_image, tiny_depth_anything):
    est = load_depth(tiny_depth_anything(tmp_path / "da_metric", metric=True))
    assert est.metric and est.max_depth == 20.0
    result = est(world_image(64, 40)[None])
    assert result.metric and result.depth.shape == (1, 1, 40, 64)
    assert 0 < float(result.depth.max()) <= 20.0  # sigmoid × max_depth: metres, not rescaled
    assert result.record["kind"] == "metric" and "kept in metres" in result.record["done"]


def test_dpt_is_relative(tmp_path, world_image):
    est = load_depth(tiny_dpt(tmp_path / "dpt"))
    result = est(world_image(64, 40)[None])
    assert not result.metric and result.record["model"] == "DPTForDepthEstimation"
    assert result.depth.shape == (1, 1, 40, 64) and (result.depth >= 0).all()
    assert float(result.depth[result.depth > 0].median()) == pytest.approx(RELATIVE_MEDIAN_DEPTH, rel=1e-4)


def test_load_depth_still_loads_lyra3d_networks(tmp_path):
    shipped = load_depth(None)
    assert isinstance(shipped, NetworkDepth)
    record = shipped(torch.rand(1, 3, 32, 48)).record  # the shipped network says what it is, too
    assert record["kind"] == "metric" and record["model"] == "DepthNet" and record["model_type"] == "lyra3d-depth-unet"
    from lyra3d.models.depth import DepthNet, DepthNetConfig

    DepthNet(DepthNetConfig(base_channels=8, levels=2)).save_pretrained(tmp_path / "net")
    assert isinstance(load_depth(tmp_path / "net"), NetworkDepth)


# -- bad folders ----------------------------------------------------------------------------------------------
def test_bad_folders_are_one_line_errors(tmp_path, relative_folder):
    from transformers import BertConfig

    BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(
        tmp_path / "text_model")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text((relative_folder / "config.json").read_text())
    (no_weights / "preprocessor_config.json").write_text((relative_folder / "preprocessor_config.json").read_text())
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "missing": "not found", tmp_path / "text_model": "holds a bert, not a depth model",
             no_weights: "has no weights file", tmp_path / "empty": "has no config.json"}
    for folder, fragment in cases.items():
        with pytest.raises(InputError) as e:
            load_depth(folder)
        assert fragment in str(e.value) and str(folder) in str(e.value) and "\n" not in str(e.value)
