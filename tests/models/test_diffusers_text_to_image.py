"""A local diffusers text-to-image pipeline as the text-to-image part (:mod:`lyra3d.models.diffusers_text_to_image`):
a tiny random Stable Diffusion pipeline built here, saved with ``save_pretrained``, loaded through the real code."""

import math

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.diffusers_text_to_image import DiffusersTextToImage, generation_size

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory, tiny_sd_pipeline):
    return tiny_sd_pipeline(tmp_path_factory.mktemp("sd"))


def test_generation_size_keeps_the_pixel_count_and_takes_the_aspect():
    w, h = generation_size(1024, 320 / 176, 16)
    assert (w, h) == (1376, 752) and w % 16 == 0 and h % 16 == 0
    assert abs(w / h - 320 / 176) < 0.05 and abs(math.sqrt(w * h) - 1024) < 32
    assert generation_size(512, 1.0, 64) == (512, 512)
    assert generation_size(16, 4.0, 16) == (32, 16)  # never below one step


def test_a_tiny_stable_diffusion_pipeline_makes_images(sd_folder):
    t2i = DiffusersTextToImage.from_pretrained(sd_folder)
    assert t2i.class_name == "StableDiffusionPipeline" and t2i.native_size() == 64 and t2i.vae_factor == 2
    a = t2i.generate("a red sphere on a blue floor", steps=2, guidance=3.0, seed=3, aspect=320 / 176)
    assert a.shape == (1, 3, 48, 80) and a.dtype == torch.float32  # 64² pixels at about 320:176, steps of 16
    assert 0 <= float(a.min()) and float(a.max()) <= 1 and float(a.std()) > 0
    assert torch.equal(a, t2i.generate("a red sphere on a blue floor", steps=2, guidance=3.0, seed=3,
                                       aspect=320 / 176))  # the seed decides
    assert not torch.equal(a, t2i.generate("a red sphere on a blue floor", steps=2, guidance=3.0, seed=4,
                                           aspect=320 / 176))
    assert t2i.record()["pipeline"] == "StableDiffusionPipeline"


def test_bad_folders_are_one_line_errors(tmp_path, sd_folder):
    (tmp_path / "plain").mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_index.json").write_text((sd_folder / "model_index.json").read_text())  # no component folders
    cases = {tmp_path / "missing": "not found", tmp_path / "plain": "has no model_index.json",
             broken: "cannot load a text-to-image pipeline"}
    for folder, fragment in cases.items():
        with pytest.raises(InputError) as e:
            DiffusersTextToImage.from_pretrained(folder)
        assert fragment in str(e.value) and str(folder) in str(e.value) and "\n" not in str(e.value)
