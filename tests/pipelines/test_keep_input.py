"""The input as 3D Gaussians (a "3D photo") and its fusion with a decoder's Gaussians (issue 21):
lyra3d.core.photo_gaussians, the keep_input setting, and the real-photo evaluation."""

import json
import math
import sys

import pytest
import torch

from lyra3d import pipelines as pl
from lyra3d.core.cache3d import depth_edges
from lyra3d.core.cameras import default_camera
from lyra3d.core.gaussians import Gaussians, quat_to_rotmat
from lyra3d.core.metrics import psnr
from lyra3d.core.photo_gaussians import (
    PhotoSettings,
    composite,
    fuse,
    input_view_weights,
    photo_gaussians,
    sky_depth,
    visible_surface_mask,
)
from lyra3d.core.render import rasterize
from lyra3d.errors import InputError
from lyra3d.pipelines.config import GenerateConfig


@pytest.fixture(scope="module")
def world():
    from lyra3d.data import worlds

    cam = default_camera(160, 96)
    out = worlds.render(worlds.make_world(1_000_007), cam)
    return out.rgb[0], (out.depth * out.mask)[0], cam


def test_the_3d_photo_of_a_world_renders_back_to_the_image(world):
    image, depth, cam = world
    assert 0.2 < float((depth == 0).float().mean()) < 0.8  # sky and ground: both kinds of pixel are there
    sky = sky_depth(depth)
    assert sky >= float(depth.max())
    g = photo_gaussians(image, depth, cam, sky_depth=sky)
    assert len(g) == 160 * 96  # one per pixel, sky included
    solved = float(psnr(rasterize(g, cam).rgb[0].clamp(0, 1), image))
    assert solved > 33.0  # measured 34.7 dB (320×176 renders of training worlds: 32-37, fused with the decoder's)
    # the colour solve is what makes it sharp: the pixels' own colours render blurred by the discs' overlap
    plain = photo_gaussians(image, depth, cam, PhotoSettings(sharpen=0), sky_depth=sky)
    assert float(psnr(rasterize(plain, cam).rgb[0].clamp(0, 1), image)) < solved - 3  # measured 29.5 dB
    # the pixels just behind occlusion edges keep their own colours (no outlines in other views), at a price here
    edges = depth_edges(torch.where(depth > 0, depth, torch.full_like(depth, sky)))[0].flatten() > 0
    assert 0.01 < float(edges.float().mean()) < 0.2
    assert torch.allclose(g.rgb[edges], image.permute(1, 2, 0).reshape(-1, 3)[edges], atol=1e-5)
    assert not torch.allclose(g.rgb[~edges], image.permute(1, 2, 0).reshape(-1, 3)[~edges], atol=1e-2)
    free = photo_gaussians(image, depth, cam, PhotoSettings(freeze_edges=False), sky_depth=sky)
    assert float(psnr(rasterize(free, cam).rgb[0].clamp(0, 1), image)) > solved + 1  # measured 36.6 dB
    # without a sky depth the sky's pixels have no Gaussian
    assert len(photo_gaussians(image, depth, cam)) == int((depth > 0).sum())
    # one Gaussian per 2×2 block
    assert len(photo_gaussians(image, depth, cam, PhotoSettings(stride=2), sky_depth=sky)) == 80 * 48


def test_the_composite_model_matches_the_rasterizer(world):
    image, depth, cam = world
    depth = torch.where(depth > 0, depth, torch.full_like(depth, sky_depth(depth)))
    s = PhotoSettings(sharpen=0)
    offsets, weights = input_view_weights(depth, s.footprint, s.opacity)
    rendered = rasterize(photo_gaussians(image, depth, cam, s), cam).rgb[0]
    assert float(psnr(composite(image, offsets, weights), rendered)) > 45


def _covariances(g: Gaussians) -> torch.Tensor:
    r = quat_to_rotmat(g.quats)
    s = torch.exp(g.scales)
    return r @ torch.diag_embed(s * s) @ r.transpose(1, 2)


def test_gaussians_are_cut_at_depth_edges():
    # a step: the left half of the image at 2 m, the right half at 4 m; the identity camera's z is world z
    cam = default_camera(64, 32)
    depth = torch.full((1, 32, 64), 2.0)
    depth[..., 32:] = 4.0
    image = torch.rand(3, 32, 64, generator=torch.Generator().manual_seed(0))
    g = photo_gaussians(image, depth, cam)
    z = g.means[:, 2]
    assert torch.allclose(z.sort().values, depth.flatten().sort().values, atol=1e-5)  # on their rays at their depth
    sigma_z = _covariances(g)[:, 2, 2].sqrt()
    # no Gaussian reaches across the 2 m jump, not even at the edge's two columns: 3σ along z stays within 1 %
    # of it, the discs' thickness (a rubber sheet, derivatives taken across the edge, would reach 1.5 m)
    edge = torch.zeros(32, 64, dtype=torch.bool)
    edge[:, 31:33] = True
    assert float(sigma_z.max()) * 3 < 0.02
    assert float(sigma_z[edge.flatten()].max()) * 3 < 0.02
    # the discs face the camera on these fronto-parallel planes and are a footprint wide (0.4 px at the input)
    f = float(cam.fx[0])
    largest = torch.exp(g.scales).max(1).values
    assert torch.allclose(largest, 0.4 * z / f, rtol=0.02)

    # a slanted plane is followed (the disc's normal is the plane's), its discs stretched, at most max_stretch
    slope = torch.linspace(2.0, 3.0, 64)[None, None].expand(1, 32, 64).contiguous()
    g = photo_gaussians(image, slope, cam, PhotoSettings(max_stretch=4.0))
    r = quat_to_rotmat(g.quats)
    thinnest = torch.exp(g.scales).argmin(1)
    normal = r.gather(2, thinnest[:, None, None].expand(-1, 3, 1))[..., 0]
    # the plane's normal, from two of its points' chords
    pts = g.means.reshape(32, 64, 3)
    tangent_u = pts[16, 40] - pts[16, 20]
    tangent_v = pts[24, 30] - pts[8, 30]
    true_normal = torch.nn.functional.normalize(torch.linalg.cross(tangent_u, tangent_v), dim=0)
    inner = (normal.reshape(32, 64, 3)[4:-4, 4:-4] @ true_normal).abs()
    assert float(inner.min()) > 0.99
    largest = torch.exp(g.scales).max(1).values
    assert float((largest / (0.4 * g.means[:, 2] / f)).max()) <= 4.0 * 1.02


def test_fusion_drops_decoder_gaussians_in_front_of_or_on_the_visible_surface():
    cam = default_camera(64, 32)
    depth = torch.full((1, 32, 64), 4.0)
    depth[..., :, :8] = 0.0  # a strip of unknown depth (sky without a backdrop): nothing is known there
    f = float(cam.fx[0])

    def at(u: float, v: float, z: float) -> list[float]:  # the point seen at pixel (u, v) at depth z
        return [(u - 32) / f * z, (v - 16) / f * z, z]

    means = torch.tensor([at(40, 16, 2.0),  # in front of the surface: contradicts the input → dropped
                          at(20, 10, 4.3),  # on it (within 25 %): a duplicate of the input → dropped
                          at(50, 20, 8.0),  # behind it: a disocclusion → kept
                          at(120, 16, 2.0),  # outside the input's view → kept
                          [0.0, 0.0, -3.0],  # behind the camera → kept
                          at(3, 16, 2.0)])  # where the depth is unknown → kept
    n = len(means)
    decoded = Gaussians.from_activated(means, torch.full((n, 3), 0.01), torch.tensor([[1.0, 0, 0, 0]] * n),
                                       torch.full((n,), 0.9), torch.rand(n, 3))
    assert visible_surface_mask(decoded, depth, cam, tolerance=0.25).tolist() == [True, True, False, False, False,
                                                                                    False]
    photo = photo_gaussians(torch.rand(3, 32, 64), depth, cam)
    fused, dropped = fuse(photo, decoded, depth, cam, tolerance=0.25)
    assert dropped == 2 and len(fused) == len(photo) + 4
    assert torch.equal(fused.means[len(photo):], means[2:])
    assert torch.equal(fused.means[:len(photo)], photo.means)  # the photo's first, untouched
    # a tighter tolerance keeps the one just behind the surface
    assert visible_surface_mask(decoded, depth, cam, tolerance=0.05).tolist()[:2] == [True, False]


def test_bad_photo_inputs_are_one_line_errors():
    cam = default_camera(64, 32)
    for kwargs, words in [({"image": torch.rand(64, 32)}, "(3, H, W)"), ({"depth": torch.ones(1, 16, 64)}, "depth"),
                          ({"camera": default_camera(32, 32)}, "camera"),
                          ({"settings": PhotoSettings(stride=3)}, "multiple"),
                          ({"settings": PhotoSettings(opacity=1.0)}, "opacity"),
                          ({"sky_depth": -1.0}, "sky depth")]:
        args = {"image": torch.rand(3, 32, 64), "depth": torch.ones(1, 32, 64), "camera": cam, **kwargs}
        with pytest.raises(InputError, match=None) as e:
            photo_gaussians(**args)
        assert words in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="no positive"):
        sky_depth(torch.zeros(1, 4, 4))


def test_keep_input_round_trips_through_the_config_and_the_report(tmp_path, world_image):
    assert GenerateConfig().keep_input == "on"
    cfg = GenerateConfig(keep_input="off").validate()
    assert GenerateConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))).keep_input == "off"
    assert GenerateConfig().replace(keep_input="off").keep_input == "off"
    with pytest.raises(InputError, match="keep_input must be on or off, got 'auto'"):
        GenerateConfig().replace(keep_input="auto")

    # a scene's report.json carries the setting and what it did; its config reads back
    image, depth, cam = world_image(64, 32), torch.full((1, 32, 64), 3.0), default_camera(64, 32)
    g = photo_gaussians(image, depth, cam)
    record = {"mode": "on", "input_gaussians": len(g), "decoder_gaussians": 0, "decoder_gaussians_dropped": 0}
    scene = pl.Scene(gaussians=g, cameras=cam, trajectories=("left",), input_camera=cam, input_image=image,
                     center_depth=3.0, input_view_psnr=40.0, timings={"total": 1.0}, seed=0,
                     config=GenerateConfig(keep_input="on"), input_depth=depth, keep_input=record)
    report = pl.save_scene(scene, tmp_path / "out", flythrough_frames=2)
    on_disk = json.loads((tmp_path / "out" / "report.json").read_text())
    assert on_disk["config"]["keep_input"] == "on" and on_disk["keep_input"] == record == report["keep_input"]
    assert GenerateConfig.from_dict(on_disk["config"]).keep_input == "on"


TINY = pl.Preset("test-photo", 128, 64, 5, 50.0, "tests only")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, make_weights):
    pl.register_preset(TINY, replace=True)
    config = pl.GenerateConfig(preset="test-photo", trajectories=("left", "zoom_in"), steps=1)
    yield pl.ImageTo3DPipeline.from_pretrained(make_weights(tmp_path_factory.mktemp("weights"), text_to_image=False),
                                               config=config)
    pl.PRESETS.pop("test-photo", None)


def test_the_pipeline_keeps_the_input_and_the_photo_evaluation_measures_it(tmp_path, pipe, save_png, world_image):
    from lyra3d.evaluation.photos import evaluate_photos, photo_paths

    # the real shipped teacher and a small random decoder: the decoder alone shows nothing of the input
    image = world_image(128, 64, seed=1_000_011)
    off = pipe(image, seed=1, keep_input="off")
    on = pipe(image, seed=1)
    assert off.keep_input is None and off.report().get("keep_input") is None
    assert on.keep_input["input_gaussians"] == 128 * 64 and on.config.keep_input == "on"
    assert len(on.gaussians) == 128 * 64 + len(off.gaussians) - on.keep_input["decoder_gaussians_dropped"]
    assert off.input_view_psnr < 20 and on.input_view_psnr > 30
    assert torch.equal(on.gaussians.means, pipe(image, seed=1).gaussians.means)  # deterministic for a seed
    assert on.input_depth.shape == (1, 64, 128) and on.report()["keep_input"]["mode"] == "on"

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, seed in enumerate((1_000_011, 1_000_020)):
        save_png(world_image(160, 80, seed=seed), folder / f"p{i}.png")
    (folder / "manifest.json").write_text(json.dumps({"photos": [{"file": "p0.png", "split": "heldout"},
                                                                 {"file": "p1.png", "split": "tune"}]}))
    assert [p.name for p in photo_paths(folder)] == ["p0.png", "p1.png"]
    assert [p.name for p in photo_paths(folder, "heldout")] == ["p0.png"]
    rows = evaluate_photos(pipe, folder, out_dir=tmp_path / "eval", split="heldout", seed=1)
    assert len(rows) == 1 and rows[0]["photo"] == "p0.png"
    row = rows[0]
    assert row["input_view_psnr"] > 30 and 0.9 < row["input_view_ssim"] <= 1
    assert row["trajectory_end_psnr"] > 24 and 0.2 < row["trajectory_end_covered"] < 1  # the sky is not in the cache
    assert set(row) >= {"trajectory_end_psnr_left", "trajectory_end_psnr_zoom_in", "seconds", "gaussians"}
    record = json.loads((tmp_path / "eval" / "photos.json").read_text())
    assert record["photos"] == ["p0.png"] and math.isclose(record["summary"]["input_view_psnr"],
                                                           row["input_view_psnr"])
    from PIL import Image

    with Image.open(tmp_path / "eval" / "contact_sheet.png") as sheet:
        assert sheet.width == 4 * 128 + 3 * 4 and sheet.height == 64 + 14 + 4
    with pytest.raises(InputError, match="no photos"):
        photo_paths(folder, "nonexistent")
    with pytest.raises(InputError, match="not found"):
        photo_paths([folder / "missing.png"])


def test_keep_input_on_held_out_worlds_is_scored_on_one_teacher_output(pipe):
    from lyra3d.evaluation.photos import evaluate_worlds

    (row,) = evaluate_worlds(pipe, [1_000_020])
    assert row["seed"] == 1_000_020
    assert row["input_view_psnr_on"] > 27 > 20 > row["input_view_psnr_off"]  # measured 29.9; a random decoder alone
    assert row["trajectory_end_psnr_on"] > row["trajectory_end_psnr_off"]
    assert row["gaussians_off"] == 2 * 5 * 16 * 32 // 2 and 0 < row["heldout_ssim_on"] <= 1


def _real_photos_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "real_photos.py"
    spec = importlib.util.spec_from_file_location("real_photos", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_real_photos_have_a_fixed_held_out_split_and_are_collected_with_their_licences(tmp_path):
    rp = _real_photos_module()
    names = [p.name for p in rp.PHOTOS]
    assert len(names) == len(set(names)) == 40  # 13 held out, 27 to tune (13 of them from lomiri-wallpapers)
    assert {p.split for p in rp.PHOTOS} == {"heldout", "tune"} and len(rp.heldout_names()) == 13
    assert all(p.licence and p.author for p in rp.PHOTOS)
    entries, missing = rp.collect(tmp_path, split="heldout")
    present = [p for p in rp.PHOTOS if p.split == "heldout" and rp.source_file(p).is_file()]
    assert [e["name"] for e in entries] == [p.name for p in present]  # scikit-image's at least (a test dependency)
    assert {"skimage_astronaut", "skimage_coffee"} <= {e["name"] for e in entries}
    assert set(missing) == {p.package for p in rp.PHOTOS if p.split == "heldout" and p not in present}
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [e["file"] for e in manifest["photos"]] == [f"{e['name']}.png" for e in entries]
    from PIL import Image

    for e in entries:
        with Image.open(tmp_path / e["file"]) as im:
            assert max(im.size) <= 640 and im.mode == "RGB" and list(im.size) == e["size"]
        assert e["split"] == "heldout" and e["licence"]
