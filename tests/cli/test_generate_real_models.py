"""``lyra3d generate`` with real-model folders (tiny random ones built here, saved with ``save_pretrained``): a
transformers depth model (``--depth DIR``, or a weights folder's depth/) and a diffusers text-to-image pipeline
(``--text-to-image DIR``, or a weights folder's text_to_image/), through the real loading code, end to end; the
report says what was used; bad folders are one-line errors that leave nothing behind."""

import json
import shutil

import pytest

from lyra3d.models.hf_depth import RELATIVE_MEDIAN_DEPTH

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

FAST = ("--trajectories", "left", "--frames", 5, "--steps", 1, "--flythrough-frames", 2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_depth_anything, tiny_sd_pipeline, photo_image, save_png):
    root = tmp_path_factory.mktemp("real")
    return {"depth": tiny_depth_anything(root / "depth_anything"), "sd": tiny_sd_pipeline(root / "sd"),
            "photo": save_png(photo_image(160, 88), root / "photo.png"), "root": root}


def test_generate_with_a_transformers_depth_model(tmp_path, folders, invoke, listing):
    out = tmp_path / "scene"
    r = invoke("generate", "--image", folders["photo"], "--depth", folders["depth"], "--out", out, *FAST, "-q")
    assert r.exit_code == 0, r.output
    assert r.stderr == ""  # transformers' own warnings and progress bars stay quiet
    assert "scene.ply" in listing(out)
    report = json.loads((out / "report.json").read_text())
    depth = report["depth"]
    assert depth["kind"] == "relative" and depth["model"] == "DepthAnythingForDepthEstimation"
    assert depth["folder"] == str(folders["depth"]) and depth["median_depth"] == RELATIVE_MEDIAN_DEPTH
    assert depth["done"].startswith("inverse depth -> z-depth") and "resized to 320x176" in depth["done"]
    assert report["models"]["depth"]["path"] == str(folders["depth"])
    assert report["models"]["depth"]["model_type"] == "depth_anything" and not report["models"]["depth"]["shipped"]
    assert 0.5 * RELATIVE_MEDIAN_DEPTH < report["center_depth"] < 2 * RELATIVE_MEDIAN_DEPTH


def test_a_weights_folder_with_real_parts(tmp_path, folders):
    """depth/ a transformers folder and text_to_image/ a diffusers pipeline: both load through the weights folder."""
    from lyra3d.models.diffusers_text_to_image import DiffusersTextToImage
    from lyra3d.models.hf_depth import TransformersDepth
    from lyra3d.pipelines import TextTo3DPipeline
    from lyra3d.pipelines.teacher import Teacher

    weights = tmp_path / "weights"
    shutil.copytree(folders["depth"], weights / "depth")
    shutil.copytree(folders["sd"], weights / "text_to_image")
    text = TextTo3DPipeline.from_pretrained(weights)
    assert isinstance(text.text_to_image, DiffusersTextToImage) and isinstance(text.image_to_3d.teacher.depth,
                                                                                 TransformersDepth)
    assert text.model_versions()["text_to_image"]["model_type"] == "StableDiffusionPipeline"
    assert isinstance(Teacher.from_pretrained(depth=folders["depth"]).depth, TransformersDepth)
    saved = text.save_pretrained(tmp_path / "saved")  # saved back, both real parts as they were loaded
    assert (saved / "depth" / "preprocessor_config.json").is_file() and (saved / "text_to_image" / "unet").is_dir()
    again = TextTo3DPipeline.from_pretrained(saved)
    assert isinstance(again.text_to_image, DiffusersTextToImage) and isinstance(again.image_to_3d.teacher.depth,
                                                                                  TransformersDepth)


def test_generate_from_text_with_a_diffusers_pipeline(tmp_path, folders, invoke):
    out = tmp_path / "scene"
    r = invoke("generate", "--text", "a yellow cylinder next to a green sphere on a wooden floor, sunset sky",
               "--text-to-image", folders["sd"], "--out", out, *FAST, "--keep-input", "off")
    assert r.exit_code == 0, r.output
    assert "does not know" not in r.stderr  # a diffusers pipeline has no fixed vocabulary
    assert "diffusers" not in r.stderr.lower() and "Loading" not in r.stderr  # its logs and bars stay quiet
    report = json.loads((out / "report.json").read_text())
    assert report["input"]["kind"] == "text" and "unknown_words" not in report["input"]
    t2i = report["models"]["text_to_image"]
    assert t2i["path"] == str(folders["sd"]) and t2i["model_type"] == "StableDiffusionPipeline"
    assert "text_to_image" in report["timings_s"] and report["gaussians"] > 0


def test_many_scenes_with_a_transformers_depth_model(tmp_path, folders, invoke, world_image, save_png):
    """``--images DIR --depth DIR``: the batched depth call gives each scene its own depth record (its own scale
    factor), and batch.json records the depth folder."""
    photos = tmp_path / "photos"
    photos.mkdir()
    save_png(world_image(160, 88, seed=1_000_001), photos / "a.png")
    save_png(world_image(160, 88, seed=1_000_002), photos / "b.png")
    out = tmp_path / "scenes"
    r = invoke("generate", "--images", photos, "--depth", folders["depth"], "--out", out, "--batch-size", 2, *FAST,
               "-q")
    assert r.exit_code == 0, r.output
    depths = [json.loads((out / n / "report.json").read_text())["depth"] for n in ("a", "b")]
    for depth in depths:
        assert depth["kind"] == "relative" and depth["folder"] == str(folders["depth"])
        assert len(depth["scale_factor"]) == 1  # the scene's own, as a single call records it
    assert depths[0]["scale_factor"] != depths[1]["scale_factor"]
    assert json.loads((out / "batch.json").read_text())["models"] == {"depth": str(folders["depth"].resolve())}


@pytest.mark.parametrize("args, fragments", [
    (["--image", "{photo}", "--depth", "{root}/nowhere"], ["depth folder not found", "nowhere"]),
    (["--image", "{photo}", "--depth", "{root}/bert"], ["holds a bert, not a depth model", "bert"]),
    (["--image", "{photo}", "--depth", "{root}/no_weights"], ["has no weights file", "no_weights"]),
    (["--text", "a red sphere", "--text-to-image", "{root}/nowhere"], ["text-to-image folder not found"]),
    (["--text", "a red sphere", "--text-to-image", "{root}/bert"], ["has no model_index.json", "bert"]),
    (["--image", "{photo}", "--text-to-image", "{sd}"], ["--text-to-image is for --text only"]),
    (["--images", "{root}", "--text-to-image", "{sd}"], ["--text-to-image is for --prompts"]),
])
def test_bad_folders_give_one_line_and_leave_nothing(tmp_path, folders, args, fragments, invoke,
                                                      assert_one_line_error):
    root = folders["root"]
    if not (root / "bert").is_dir():
        from transformers import BertConfig

        BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8).save_pretrained(
            root / "bert")
        (root / "no_weights").mkdir()
        for f in ("config.json", "preprocessor_config.json"):
            shutil.copy(folders["depth"] / f, root / "no_weights" / f)
    args = [str(a).format(root=root, photo=folders["photo"], sd=folders["sd"]) for a in args]
    out = tmp_path / "out" / "scene"
    r = invoke("generate", *args, "--out", out)
    assert_one_line_error(r.exit_code, r.stderr, *fragments)
    assert not (tmp_path / "out").exists()


def test_a_video_model_folder_that_is_not_vace_is_one_line(tmp_path, invoke, assert_one_line_error, tiny_sd_pipeline,
                                                            world_image, save_png):
    """--video-model with a diffusers pipeline that takes no control video + mask (issue 23): one line, no output."""
    pytest.importorskip("diffusers")
    image = save_png(world_image(), tmp_path / "in.png")
    sd = tiny_sd_pipeline(tmp_path / "sd")
    r = invoke("generate", "--image", image, "--video-model", sd, "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "holds a diffusers StableDiffusionPipeline, not a control-video + mask")
    assert not (tmp_path / "o").exists()
    r = invoke("generate", "--image", image, "--video-model", tmp_path / "nowhere", "--out", tmp_path / "o")
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1 and "nowhere" in r.stderr


def test_video_memory_options_are_checked_and_reach_the_teacher(tmp_path, invoke, assert_one_line_error, world_image,
                                                                save_png):
    """--video-memory / --vae-tiling (issue 23): a bad value is one line naming the option; with lyra3d's own video
    model the teacher (reached through the pipeline's loading) says they are for a Wan VACE model; batch and Ray
    runs refuse them. No output folder is left."""
    image = save_png(world_image(), tmp_path / "in.png")
    r = invoke("generate", "--image", image, "--video-memory", "lots", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "video memory must be auto, none, model_offload, group_offload, "
                                                 "got 'lots'")
    r = invoke("generate", "--image", image, "--vae-tiling", "maybe", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "vae tiling must be auto, on, off, got 'maybe'")
    r = invoke("generate", "--image", image, "--video-memory", "group_offload", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--video-memory and --vae-tiling are for a diffusers Wan VACE video "
                                                 "model")
    r = invoke("generate", "--images", tmp_path, "--video-memory", "none", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--video-memory and --vae-tiling are for one scene")
    r = invoke("sdg", "--worlds", 1, "--device", "cpu", "--vae-tiling", "on", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "--video-memory and --vae-tiling are for a diffusers Wan VACE video "
                                                 "model")
    r = invoke("sdg", "--worlds", 1, "--ray", "--video-memory", "none", "--out", tmp_path / "o")
    assert_one_line_error(r.exit_code, r.stderr, "not passed to Ray workers yet")
    assert not (tmp_path / "o").exists()
