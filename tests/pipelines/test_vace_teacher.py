"""A Wan VACE folder as the teacher's video model (issue 23), end to end with tiny random models built here and loaded
through the real code: the image → 3D pipeline writes a scene with the decoder and with per-scene optimisation, text
→ 3D passes its prompt, SDG writes and resumes, and one decoder training step on its output changes the weights."""

from __future__ import annotations

import json

import pytest
import torch

from lyra3d.errors import InputError
from lyra3d.models.latents import LatentShape

pytest.importorskip("diffusers")
pytest.importorskip("ftfy")
Z = 4
SHAPE = LatentShape(Z, 8, 4)  # the tiny Wan VAE: 4 channels, 8x space, 4x time


def _decoder_for_vae(seed: int = 0):
    from lyra3d.models.decoder import DecoderConfig, GaussianDecoder

    torch.manual_seed(seed)
    decoder = GaussianDecoder(DecoderConfig(dim=32, depth=2, heads=2).for_latents(SHAPE))
    with torch.no_grad():
        decoder.head.weight.normal_(0.0, 0.05)
    return decoder.eval()


@pytest.fixture(scope="module")
def vace_weights(tmp_path_factory, tiny_vace_pipeline):
    """A weights folder: video_model/ a tiny Wan VACE pipeline, decoder/ a small decoder of its VAE's latents."""
    root = tmp_path_factory.mktemp("vace_weights")
    tiny_vace_pipeline(root / "video_model", z_dim=Z)
    _decoder_for_vae().save_pretrained(root / "decoder")
    return root


def test_teacher_from_a_vace_folder_keeps_the_teacher_contract(vace_weights, world_image):
    from lyra3d.core.cameras import default_camera
    from lyra3d.pipelines.teacher import Teacher, TeacherConfig
    from lyra3d.pipelines.teacher import VACETeacher

    teacher = Teacher.from_pretrained(video_model=vace_weights / "video_model",
                                      config=TeacherConfig(num_frames=5, steps=1, trajectories=("left", "right")))
    assert isinstance(teacher, VACETeacher) and teacher.tokenizer.latent_channels == Z
    image = world_image(64, 32)
    gen = teacher(image, default_camera(64, 32), seed=3, keep_cache=True, prompt="a red sphere")
    assert gen.latents.shape == (2, 2, Z, 4, 8) and torch.isfinite(gen.latents).all()
    assert gen.meta["prompt"] == "a red sphere" and teacher.prompt == ""
    frames = teacher.decode(gen.latents)
    assert frames.shape == (2, 5, 3, 32, 64) and 0 <= frames.min() and frames.max() <= 1
    again = teacher(image, default_camera(64, 32), seed=3, prompt="a red sphere").latents
    assert torch.equal(gen.latents, again)  # same seed, same latents
    other = teacher(image, default_camera(64, 32), seed=3, prompt="a blue sky").latents
    assert not torch.allclose(gen.latents, other)  # the prompt reaches the transformer
    with pytest.raises(InputError, match="the tokenizer of a Wan VACE teacher is its own VAE"):
        Teacher.from_pretrained(tokenizer=vace_weights / "video_model" / "vae", video_model=vace_weights / "video_model")


def test_image_to_3d_with_vace_writes_a_scene_with_either_reconstructor(vace_weights, world_image, tmp_path):
    from lyra3d.pipelines import ImageTo3DPipeline, save_scene
    from lyra3d.pipelines.config import Preset, register_preset

    register_preset(Preset("vace_test", 64, 32, 5), replace=True)  # diffusers' Wan VAE is slow on a CPU: small frames
    pipe = ImageTo3DPipeline.from_pretrained(vace_weights)
    assert pipe.sources["tokenizer"] == vace_weights / "video_model" / "vae"
    scene = pipe(world_image(64, 32), seed=0, preset="vace_test", trajectories=("left", "right"), steps=1)
    assert scene.frames is None and len(scene.gaussians) > 0 and torch.isfinite(scene.gaussians.means).all()
    record = save_scene(scene, tmp_path / "scene", flythrough_frames=2)
    assert (tmp_path / "scene" / "scene.ply").is_file() and record["gaussians"] == len(scene.gaussians)
    assert pipe.model_versions()["video_model"]["model_type"] == "WanVACEPipeline"
    opt = pipe(world_image(64, 32), seed=0, preset="vace_test", trajectories=("left",), steps=1,
               reconstruct="optimize", optimize_steps=2, keep_frames=True)
    assert opt.reconstruction["reconstructor"] == "optimize" and opt.frames.shape == (1, 5, 3, 32, 64)


def test_the_shipped_decoder_refuses_a_vace_of_other_latents(vace_weights, tmp_path):
    from lyra3d.pipelines import ImageTo3DPipeline

    with pytest.raises(InputError, match="the decoder reads 16-channel latents .* the tokenizer gives 4"):
        ImageTo3DPipeline.from_pretrained(None, video_model=vace_weights / "video_model")


def test_sdg_with_vace_writes_resumes_and_trains_a_decoder_step(vace_weights, tmp_path):
    from lyra3d.data.sdg import load_sample, run_sdg, sample_dirs
    from lyra3d.models.decoder import GaussianDecoder
    from lyra3d.train.decoder import DecoderTrainConfig, data_latent_shape, load_data, sample_loss

    out = tmp_path / "sdg"
    kw = dict(worlds=1, frames=5, width=64, height=32, steps=1, video_model=vace_weights / "video_model",
              device="cpu", threads=1)
    assert run_sdg(out, **kw) == 1
    settings = json.loads((out / "sdg.json").read_text())
    assert settings["latents"] == {"latent_channels": Z, "spatial_factor": 8, "temporal_factor": 4}
    s = load_sample(sample_dirs(out)[0])
    assert s.latents.shape == (6, 2, Z, 4, 8) and s.frames.shape == (6, 5, 3, 32, 64)
    assert run_sdg(out, **kw) == 0  # resumed: nothing left to do
    config = DecoderTrainConfig.tiny(str(tmp_path / "run"))
    config.data = str(out)
    shape = data_latent_shape(config, sample_dirs(out))
    assert shape == SHAPE
    torch.manual_seed(0)
    decoder = GaussianDecoder(config.model.for_latents(shape)).train()
    sample = load_data(sample_dirs(out)[:1], torch.device("cpu"))[0]
    opt = torch.optim.AdamW(decoder.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in decoder.state_dict().items()}
    loss, _ = sample_loss(decoder, decoder, sample, torch.arange(2), torch.tensor([0, 4]), config, 0.0, "torch")
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    opt.step()
    changed = [k for k, v in decoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "head.weight" in changed and "latent_in.weight" in changed


def test_memory_settings_reach_the_vace_model(vace_weights, tmp_path):
    """--video-memory / --vae-tiling as the pipelines and SDG carry them (GenerateConfig, TeacherConfig) reach the
    VACE backend's config; a bad value, or one for lyra3d's own video model, is one line."""
    from lyra3d.data.sdg import run_sdg
    from lyra3d.pipelines import ImageTo3DPipeline
    from lyra3d.pipelines.config import GenerateConfig
    from lyra3d.pipelines.teacher import Teacher, TeacherConfig

    pipe = ImageTo3DPipeline.from_pretrained(vace_weights, config=GenerateConfig(video_memory="group_offload",
                                                                                vae_tiling="on"))
    vm = pipe.teacher.video_model
    assert (vm.config.memory, vm.config.vae_tiling, vm.pipe.vae.use_tiling) == ("group_offload", True, True)
    assert pipe.config.video_memory == "group_offload"
    teacher = Teacher.from_pretrained(video_model=vace_weights / "video_model",
                                      config=TeacherConfig(video_memory="model_offload", vae_tiling="off"))
    assert (teacher.video_model.config.memory, teacher.video_model.config.vae_tiling) == ("model_offload", False)
    assert Teacher.from_pretrained(video_model=vace_weights / "video_model").video_model.config.memory == "auto"
    with pytest.raises(InputError, match=r"^video memory \(--video-memory\) must be auto, none, model_offload"):
        Teacher.from_pretrained(video_model=vace_weights / "video_model", config=TeacherConfig(video_memory="lots"))
    with pytest.raises(InputError, match="--video-memory and --vae-tiling are for a diffusers Wan VACE video model"):
        Teacher.from_pretrained(config=TeacherConfig(vae_tiling="on"))  # lyra3d's shipped video model
    with pytest.raises(InputError, match=r"^video memory must be auto, none, model_offload, group_offload, got 'x'$"):
        GenerateConfig(video_memory="x").validate()
    with pytest.raises(InputError, match=r"^vae tiling must be auto, on, off, got 'yes'$"):
        GenerateConfig(vae_tiling="yes").validate()
    kw = dict(worlds=1, frames=5, width=64, height=32, steps=1, device="cpu", threads=1)
    with pytest.raises(InputError, match=r"must be auto, none, model_offload, group_offload, got 'lots'"):
        run_sdg(tmp_path / "sdg", video_model=vace_weights / "video_model", video_memory="lots", **kw)
    with pytest.raises(InputError, match="are for a diffusers Wan VACE video model"):
        run_sdg(tmp_path / "sdg", video_memory="group_offload", **kw)
    assert not (tmp_path / "sdg").exists()
