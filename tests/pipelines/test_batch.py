"""Many scenes (issue 25): the batched image pipeline gives the scenes of single calls, and a batch over a folder
writes one scene folder per input, reports a corrupt one and resumes without redoing work. Real parts: the
shipped teacher and a small random decoder, at a tiny registered preset (128×64, 5 frames, one step)."""

import json

import pytest
import torch

from lyra3d import pipelines as pl
from lyra3d.core.metrics import psnr
from lyra3d.core.render import rasterize
from lyra3d.pipelines.batch import SUMMARY, list_inputs
from lyra3d.pipelines.outputs import OUTPUT_FILES

TINY = pl.Preset("test-batch", 128, 64, 5, 50.0, "tests only")
SETTINGS = {"preset": "test-batch", "trajectories": ("left", "up"), "steps": 1}


@pytest.fixture(scope="module")
def weights(tmp_path_factory, make_weights):
    return make_weights(tmp_path_factory.mktemp("weights"), text_to_image=False)


@pytest.fixture(scope="module")
def pipe(weights):
    pl.register_preset(TINY, replace=True)
    yield pl.ImageTo3DPipeline.from_pretrained(weights, config=pl.GenerateConfig(**SETTINGS))
    pl.PRESETS.pop(TINY.name, None)


def _render(scene, camera):
    return rasterize(scene.gaussians, camera).rgb[0].clamp(0, 1)


def test_batch_of_three_equals_three_single_calls(pipe, world_image):
    images = [world_image(128, 64, seed=s) for s in (1_000_003, 1_000_004, 1_000_005)]
    seeds = [3, 4, 5]
    seen = []
    batch = pipe.batch(images, seeds, progress=lambda *r: seen.append(r))
    single = [pipe(image, seed=s) for image, s in zip(images, seeds)]
    assert seen == [(stage, 1, 1) for stage in pipe.stages()]  # each stage once for the whole batch
    for one, many, seed in zip(single, batch, seeds):
        assert many.seed == seed and many.config.seed == seed
        assert many.center_depth == pytest.approx(one.center_depth, rel=1e-5)  # per scene, not the batch's
        assert len(many.gaussians) == pytest.approx(len(one.gaussians), rel=0.01)
        for cam in (one.input_camera, one.cameras[4:5], one.cameras[9:10]):  # input view, each trajectory's end
            assert float(psnr(_render(many, cam), _render(one, cam))) >= 50.0
        assert many.input_view_psnr == pytest.approx(one.input_view_psnr, abs=0.05)
    # the scenes differ from one another (each its own image, depth, seed)
    assert len({round(s.center_depth, 4) for s in batch}) == 3
    assert not torch.equal(batch[0].gaussians.means[:100], batch[1].gaussians.means[:100])


def test_a_batch_optimises_each_scene_when_asked_as_single_calls_do(pipe, world_image):
    """``reconstruct="optimize"`` in a batch: the teacher once for the batch, then each scene optimised; each
    scene as its single call makes it (the report's reconstruct and depth records too)."""
    images = [world_image(128, 64, seed=s) for s in (1_000_006, 1_000_007)]
    settings = {"reconstruct": "optimize", "optimize_steps": 3, "keep_frames": True}
    batch = pipe.batch(images, [6, 7], **settings)
    single = [pipe(image, seed=s, **settings) for image, s in zip(images, (6, 7))]
    for one, many in zip(single, batch):
        got, want = many.report(), one.report()
        assert got["reconstruct"]["reconstructor"] == "optimize" and got["reconstruct"]["steps"] == 3
        assert {k: got["reconstruct"][k] for k in ("input_gaussians", "initial_gaussians", "targets")} == \
            {k: want["reconstruct"][k] for k in ("input_gaussians", "initial_gaussians", "targets")}
        assert got["depth"] == want["depth"] and got["depth"]["kind"] == "metric"
        assert many.keep_input is None and many.frames.shape == one.frames.shape == (2, 5, 3, 64, 128)
        assert len(many.gaussians) == len(one.gaussians)
        assert float(psnr(_render(many, one.input_camera), _render(one, one.input_camera))) >= 40.0
    assert not torch.equal(batch[0].gaussians.means[:100], batch[1].gaussians.means[:100])

def test_a_folder_of_images_with_a_corrupt_one_then_a_rerun_does_nothing(pipe, weights, world_image, save_png,
                                                                         tmp_path, listing):
    from lyra3d.pipelines.batch import generate_many

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        save_png(world_image(128, 64, seed=1_000_010 + i), folder / f"view {i}.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("not an input")
    inputs = list_inputs(images=folder)
    assert [i.name for i in inputs] == ["broken", "view_0", "view_1", "view_2", "view_3", "view_4"]
    out = tmp_path / "scenes"
    seen = []
    rows = generate_many(inputs, out, weights=weights, batch_size=2, flythrough_frames=2, write_threads=2,
                         progress=lambda *r: seen.append(r), **SETTINGS)  # written by a pool of 2 threads
    assert seen[0] == ("scenes", 0, 6) and seen[-1] == ("scenes", 6, 6)
    status = {r["name"]: r["status"] for r in rows}
    assert status == {"broken": "failed", **{f"view_{i}": "done" for i in range(5)}}
    bad = rows[0]
    assert "broken.png" in bad["error"] and bad["input_view_psnr"] is None
    for r in rows[1:]:
        files = set(listing(out / r["name"]))
        assert set(OUTPUT_FILES) <= files
        report = json.loads((out / r["name"] / "report.json").read_text())
        assert r["input_view_psnr"] == pytest.approx(report["input_view_psnr"], abs=1e-3) and r["seconds"] > 0
        assert report["batch"]["input"].endswith(".png") and report["seed"] == 0
    on_disk = [json.loads(line) for line in (out / SUMMARY).read_text().splitlines()]
    assert on_disk == rows
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", SUMMARY] + [f"view_{i}" for i in range(5)]

    # a rerun: nothing is generated again, the corrupt input is tried (and fails) again
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != SUMMARY}
    again = generate_many(inputs, out, weights=weights, batch_size=2, flythrough_frames=2, **SETTINGS)
    assert [r["status"] for r in again] == ["failed"] + ["skipped"] * 5
    assert [r["input_view_psnr"] for r in again[1:]] == [r["input_view_psnr"] for r in rows[1:]]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != SUMMARY} == before

    # other settings into the same folder are refused
    from lyra3d.errors import InputError

    with pytest.raises(InputError, match="other settings"):
        generate_many(inputs, out, weights=weights, **{**SETTINGS, "steps": 2})


def test_inputs_from_a_glob_and_a_prompts_file(tmp_path, save_png, world_image):
    from lyra3d.errors import InputError

    for name in ("a.png", "a.jpg", "b.png"):
        save_png(world_image(64, 32), tmp_path / name)
    assert [(i.name, i.kind) for i in list_inputs(images=str(tmp_path / "*.png"))] == [("a", "image"), ("b", "image")]
    assert [i.name for i in list_inputs(images=tmp_path)] == ["a", "a_2", "b"]  # a.jpg, a.png: both kept
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red sphere\n\n  a blue box  \n")
    assert [(i.name, i.source) for i in list_inputs(prompts=prompts)] == [("prompt_00001", "a red sphere"),
                                                                          ("prompt_00003", "a blue box")]
    with pytest.raises(InputError, match="holds no images"):
        list_inputs(images=str(tmp_path / "*.webp"))
    with pytest.raises(InputError, match="exactly one"):
        list_inputs(images=tmp_path, prompts=prompts)


def test_seeded_noise_per_scene_is_the_single_draw():
    from lyra3d.models.video_model import seeded_noise

    many = seeded_noise((6, 2, 3), [7, 8, 9])
    assert torch.equal(many[2:4], seeded_noise((2, 2, 3), 8)) and not torch.equal(many[:2], many[2:4])
