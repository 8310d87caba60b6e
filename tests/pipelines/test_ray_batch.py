"""Batch generation and SDG on a real local Ray cluster (issue 25): two CPU workers started here, a corrupt input
reported, a worker killed while it writes a scene has that scene redone, a rerun does no work, and
``lyra3d sdg --ray`` writes the samples the index-shard path writes."""

import json

import pytest
import torch

from lyra3d import pipelines as pl
from lyra3d.pipelines.batch import EXIT_HOOK, EXIT_ONCE, SUMMARY, generate_many, list_inputs
from lyra3d.pipelines.outputs import OUTPUT_FILES

ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'lyra3d[ray]' (the test extra has it)")

TINY = pl.Preset("test-ray", 128, 64, 5, 50.0, "tests only")
SETTINGS = {"preset": "test-ray", "trajectories": ("left",), "steps": 1}


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of two CPU slots (two workers), for this module only."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def weights(tmp_path_factory, make_weights):
    return make_weights(tmp_path_factory.mktemp("weights"), text_to_image=False)


def test_batch_on_ray_with_a_corrupt_input_and_a_killed_worker(cluster, weights, world_image, save_png, tmp_path,
                                                               monkeypatch, listing):
    pl.register_preset(TINY, replace=True)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(5):
        save_png(world_image(128, 64, seed=1_000_020 + i), folder / f"view_{i}.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    inputs = list_inputs(images=folder)
    out = tmp_path / "scenes"
    flag = tmp_path / "died"
    monkeypatch.setenv(EXIT_HOOK, "view_2")  # the worker writing view_2 exits halfway through its folder
    monkeypatch.setenv(EXIT_ONCE, str(flag))
    rows = generate_many(inputs, out, weights=weights, flythrough_frames=2, ray="local", **SETTINGS)
    assert flag.is_file()  # a worker did die mid-write
    status = {r["name"]: r["status"] for r in rows}
    assert status == {"corrupt": "failed", **{f"view_{i}": "done" for i in range(5)}}
    assert "corrupt.jpg" in rows[0]["error"]
    # complete and uncorrupted: every folder has every file, its report reads, no staging folder is left
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", SUMMARY] + [f"view_{i}" for i in range(5)]
    for i in range(5):
        assert set(OUTPUT_FILES) <= set(listing(out / f"view_{i}"))
        report = json.loads((out / f"view_{i}" / "report.json").read_text())
        assert report["input_view_psnr"] == pytest.approx(rows[1 + i]["input_view_psnr"], abs=1e-3)
        assert report["gaussians"] > 0 and report["files"]["scene.ply"] > 1000
    assert [json.loads(line) for line in (out / SUMMARY).read_text().splitlines()] == rows
    # view_2 as a single local call would write it: same seed, same scene
    solo = generate_many([i for i in inputs if i.name == "view_2"], tmp_path / "solo", weights=weights,
                         flythrough_frames=2, **SETTINGS)
    assert solo[0]["input_view_psnr"] == pytest.approx(rows[3]["input_view_psnr"], abs=1e-3)

    # a second run does no work
    monkeypatch.delenv(EXIT_HOOK)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != SUMMARY}
    again = generate_many(inputs, out, weights=weights, flythrough_frames=2, ray="local", **SETTINGS)
    assert [r["status"] for r in again] == ["failed"] + ["skipped"] * 5
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != SUMMARY} == before


def test_sdg_on_ray_writes_the_samples_of_the_index_shard_path(cluster, tmp_path, invoke):
    from safetensors.torch import load_file

    from lyra3d.data.sdg import finished_ids, run_sdg

    common = dict(worlds=2, frames=5, width=96, height=48, steps=1, seed=7, device="cpu")
    for shard in (0, 1):  # the Slurm-style path: two shards into one folder
        run_sdg(tmp_path / "shards", shard=shard, num_shards=2, **common)
    result = invoke("sdg", "--out", tmp_path / "ray", "--worlds", 2, "--frames", 5, "--width", 96, "--height", 48,
                    "--steps", 1, "--seed", 7, "--device", "cpu", "--ray", "-q")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["written"] == 2
    ids = sorted(finished_ids(tmp_path / "ray"))
    assert ids == sorted(finished_ids(tmp_path / "shards")) == [f"world_{s:07d}" for s in range(2)]
    for i in ids:
        a = load_file(str(tmp_path / "shards" / i / "latents.safetensors"))["latents"]
        b = load_file(str(tmp_path / "ray" / i / "latents.safetensors"))["latents"]
        assert a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=2e-3), (a - b).abs().max()
    assert json.loads((tmp_path / "ray" / "sdg.json").read_text()) == json.loads(
        (tmp_path / "shards" / "sdg.json").read_text())
    # a rerun writes nothing
    again = invoke("sdg", "--out", tmp_path / "ray", "--worlds", 2, "--frames", 5, "--width", 96, "--height", 48,
                   "--steps", 1, "--seed", 7, "--device", "cpu", "--ray", "-q")
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["written"] == 0


def test_sdg_on_ray_takes_augment_and_split_as_the_shard_path_does(cluster, tmp_path, world_image, save_png):
    from safetensors.torch import load_file

    from lyra3d.data.sdg import finished_ids, run_sdg
    from lyra3d.data.sdg_ray import run_sdg_ray

    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(world_image(192, 96, seed=1_000_030), photos / "a.png")
    save_png(world_image(192, 96, seed=1_000_031), photos / "b.png")
    (photos / "manifest.json").write_text(json.dumps({"photos": [{"file": "a.png", "split": "tune"},
                                                                 {"file": "b.png", "split": "heldout"}]}))
    common = dict(images=photos, augment=2, split="tune", frames=5, width=96, height=48, steps=1, seed=7,
                  device="cpu")
    assert run_sdg(tmp_path / "shard", **common) == 2
    assert run_sdg_ray(tmp_path / "ray", address="local", **common) == 2
    ids = sorted(finished_ids(tmp_path / "ray"))
    assert ids == sorted(finished_ids(tmp_path / "shard")) == ["a", "a_aug01"]  # b is held out
    for i in ids:
        a = load_file(str(tmp_path / "shard" / i / "latents.safetensors"))["latents"]
        b = load_file(str(tmp_path / "ray" / i / "latents.safetensors"))["latents"]
        # the same views (a wrong crop differs by O(1)); one worker thread vs two: float rounding only
        assert a.shape == b.shape and float((a.float() - b.float()).abs().mean()) < 5e-3
    settings = json.loads((tmp_path / "ray" / "sdg.json").read_text())
    assert settings == json.loads((tmp_path / "shard" / "sdg.json").read_text())
    assert settings["latents"] == {"latent_channels": 16, "spatial_factor": 8, "temporal_factor": 4}
