"""Fixtures every test folder shares (the tests mirror src/lyra3d: tests/core, tests/models, ...).

Most are session-wide factories: a test asks for ``small_decoder`` and calls it. The models they make are
small and random, saved and loaded through the real code; the teacher's parts stay the shipped ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.gaussians import Gaussians


def random_gaussians(n: int, sh_degree: int = 0, seed: int = 0, dynamic: bool = False) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        scales=torch.randn(n, 3, generator=g) - 3,
        quats=torch.randn(n, 4, generator=g),
        opacities=torch.randn(n, generator=g),
        sh=torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g),
        times=torch.rand(n, generator=g) if dynamic else None,
    )


@pytest.fixture
def make_gaussians():
    """``make_gaussians(n, sh_degree=0, seed=0, dynamic=False)``: random Gaussians."""
    return random_gaussians


# -- small random models and a weights folder ---------------------------------------------------------------------
def _small_decoder(seed: int = 0):
    """A random decoder whose output depends on its input (the real one zero-initialises its head)."""
    from lyra3d.models.decoder import DecoderConfig, GaussianDecoder

    torch.manual_seed(seed)
    decoder = GaussianDecoder(DecoderConfig(dim=32, depth=2, heads=2))
    with torch.no_grad():
        decoder.head.weight.normal_(0.0, 0.05)
        decoder.ray_in.weight.normal_(0.0, 0.01)
    return decoder.eval()


def _small_text_to_image(seed: int = 0):
    from lyra3d.data.worlds import caption_vocabulary
    from lyra3d.models.text_to_image import TextToImageConfig, TextToImageModel

    torch.manual_seed(seed)
    model = TextToImageModel(TextToImageConfig(vocab=caption_vocabulary(), dim=32, depth=1, heads=2, text_dim=16,
                                               text_depth=1, text_heads=2))
    with torch.no_grad():
        model.out.weight.normal_(0.0, 0.05)
    return model.eval()


@pytest.fixture(scope="session")
def small_decoder():
    """``small_decoder(seed=0)``: a small random 3DGS decoder for the shipped tokenizer's latents."""
    return _small_decoder


@pytest.fixture(scope="session")
def small_text_to_image():
    """``small_text_to_image(seed=0)``: a small random text-to-image model."""
    return _small_text_to_image


@pytest.fixture(scope="session")
def make_weights():
    """``make_weights(root, text_to_image=True)``: a weights folder holding a small random decoder (and a
    text-to-image model); the teacher's parts are left out, so the shipped ones load."""

    def make(root: Path, text_to_image: bool = True) -> Path:
        _small_decoder().save_pretrained(root / "decoder")
        if text_to_image:
            _small_text_to_image().save_pretrained(root / "text_to_image")
        return root

    return make


# -- inputs ---------------------------------------------------------------------------------------------------
def _world_image(width: int = 320, height: int = 176, seed: int = 1_000_007) -> torch.Tensor:
    from lyra3d.data import worlds

    return worlds.render(worlds.make_world(seed), default_camera(width, height)).rgb[0]


@pytest.fixture(scope="session")
def world_image():
    """``world_image(width=320, height=176, seed=1_000_007)``: a held-out world's render ``(3, H, W)``."""
    return _world_image


@pytest.fixture(scope="session")
def photo_image():
    """``photo_image(width=400, height=300)``: a world's render stretched to another size and aspect
    (rendering it there is slower)."""

    def make(width: int = 400, height: int = 300) -> torch.Tensor:
        small = _world_image(160, 96)
        return torch.nn.functional.interpolate(small[None], size=(height, width), mode="bilinear")[0].clamp(0, 1)

    return make


@pytest.fixture(scope="session")
def save_png():
    """``save_png(image (3, H, W), path) -> path``: an 8-bit PNG."""

    def save(image: torch.Tensor, path: Path) -> Path:
        from PIL import Image

        arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
        Image.fromarray(arr).save(path)
        return path

    return save


# -- the command line -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def invoke():
    """``invoke(*args)``: ``lyra3d ARGS`` in-process (typer's test runner); the result has ``exit_code`` and
    ``stderr``."""

    def run(*args):
        from typer.testing import CliRunner

        from lyra3d.cli import app

        return CliRunner().invoke(app, [str(a) for a in args])

    return run


@pytest.fixture(scope="session")
def assert_one_line_error():
    """``assert_one_line_error(code, stderr, *fragments)``: exit code 2 and exactly one line on stderr,
    ``error: ...``, holding every fragment; no traceback."""

    def check(code: int, stderr: str, *fragments):
        assert code == 2, stderr
        lines = [line for line in stderr.strip().splitlines() if line.strip()]
        assert len(lines) == 1, stderr
        assert "Traceback" not in stderr and lines[0].startswith("error: ")
        for f in fragments:
            assert f in lines[0], lines[0]

    return check


@pytest.fixture(scope="session")
def listing():
    """``listing(folder)``: every path under ``folder``, relative and sorted."""
    return lambda folder: sorted(str(p.relative_to(folder)) for p in Path(folder).rglob("*"))


# -- SDG ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def write_sdg_folder():
    """``write_sdg_folder(root, seeds, frames=5, width=96, height=48, names=("left", "right"), tokenizer=None)``: one
    SDG sample per world seed (the layout of ``lyra3d.data.sdg``): world renders and their latents (the shipped
    tokenizer's, or ``tokenizer``'s: e.g. a diffusers VAE's), standing in for the teacher's output."""

    def write(root: Path, seeds, frames: int = 5, width: int = 96, height: int = 48,
              names: tuple[str, ...] = ("left", "right"), tokenizer=None) -> Path:
        from safetensors.torch import save_file

        from lyra3d.core.trajectories import trajectory
        from lyra3d.data import worlds
        from lyra3d.models.modeling import shipped_weights
        from lyra3d.models.tokenizer import load_tokenizer

        root.mkdir(parents=True, exist_ok=True)
        tok = tokenizer or load_tokenizer(shipped_weights("tokenizer"))
        cams = Cameras.cat([trajectory(name, default_camera(width, height), frames, 5.0) for name in names])
        v, ids = len(names), []
        for seed in seeds:
            r = worlds.render(worlds.make_world(seed), cams, shadows=False)
            rgb = r.rgb.reshape(v, frames, 3, height, width)
            with torch.no_grad():
                latents = tok.encode(rgb)
            d = root / f"world_{seed:07d}"
            d.mkdir()
            save_file({"latents": latents.half().contiguous()}, str(d / "latents.safetensors"))
            np.save(d / "frames.npy", (rgb * 255 + 0.5).to(torch.uint8).numpy())
            np.save(d / "depth.npy", r.depth.reshape(v, frames, 1, height, width).half().numpy())
            (d / "cameras.json").write_text(json.dumps({"names": list(names), "cameras": cams.to_dict()}))
            (d / "meta.json").write_text(json.dumps({"id": d.name}))
            ids.append(d.name)
        (root / "manifest-00000.jsonl").write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
        return root

    return write


# -- tiny real models: transformers depth, diffusers text-to-image (random weights, saved with save_pretrained) ------
def _tiny_depth_anything(folder: Path, metric: bool = False, seed: int = 0) -> Path:
    """A ~75k-parameter Depth Anything (a 2-layer Dinov2 backbone) with random weights and its image processor. The
    head's last bias is set positive: a random head gives (almost) zero disparity everywhere."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                            image_size=56, patch_size=14, out_features=["stage1", "stage2"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[16, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, reassemble_factors=[2, 1],
                                 depth_estimation_type="metric" if metric else "relative", max_depth=20)
    model = DepthAnythingForDepthEstimation(config)
    with torch.no_grad():
        model.head.conv3.bias.fill_(0.5)
    model.save_pretrained(folder)
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=True,
                      ensure_multiple_of=14).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_depth_anything():
    """``tiny_depth_anything(folder, metric=False, seed=0) -> folder``: a tiny random transformers Depth Anything
    folder (relative, or metric with max_depth 20)."""
    return _tiny_depth_anything


def _tiny_sd_pipeline(folder: Path, seed: int = 0) -> Path:
    """A tiny random Stable Diffusion pipeline folder (UNet, VAE of factor 2, 1-layer CLIP text encoder, a CLIP BPE
    tokenizer from a vocabulary of single letters and a few words written here, Euler scheduler)."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab: dict[str, int] = {}
    for c in "abcdefghijklmnopqrstuvwxyz":
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    for w in ("a", "red", "sphere", "on", "floor", "blue", "sky", "yellow", "cylinder"):
        vocab.setdefault(w + "</w>", len(vocab))
    bos, eos = len(vocab), len(vocab) + 1
    vocab.update({"<|startoftext|>": bos, "<|endoftext|>": eos})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=16)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                                num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                                bos_token_id=bos, eos_token_id=eos, pad_token_id=eos))
    unet = UNet2DConditionModel(sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8, sample_size=32)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=EulerDiscreteScheduler(steps_offset=1), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    for f in ("vocab.json", "merges.txt"):
        (folder / f).unlink()
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_sd_pipeline():
    """``tiny_sd_pipeline(folder, seed=0) -> folder``: a tiny random diffusers Stable Diffusion pipeline folder
    (native size 64 px: a sample size of 32 latent pixels × the VAE's factor 2)."""
    return _tiny_sd_pipeline


def _tiny_vace_pipeline(folder: Path, seed: int = 0, z_dim: int = 4) -> Path:
    """A tiny random diffusers Wan VACE pipeline folder (``WanVACEPipeline``): a 2-layer VACE transformer (one VACE
    layer), a Wan VAE of the real factors (8x spatial, 4x temporal) with ``z_dim`` channels and non-trivial latent
    statistics, a 1-layer UMT5 text encoder, and a word-level tokenizer written here (tokenizers' WordLevel in a
    PreTrainedTokenizerFast: no sentencepiece model and nothing downloaded), UniPC flow scheduler as Wan's."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanVACEPipeline, WanVACETransformer3DModel
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    words = ["<pad>", "</s>", "<unk>", "a", "red", "sphere", "on", "floor", "blue", "sky", "room", "cat"]
    raw = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                               num_heads=2, relative_attention_num_buckets=8, pad_token_id=0,
                                               eos_token_id=1, decoder_start_token_id=0))
    vae = AutoencoderKLWan(base_dim=8, z_dim=z_dim, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
                           temperal_downsample=[False, True, True],
                           latents_mean=[0.1 * (i - z_dim / 2) for i in range(z_dim)],
                           latents_std=[0.5 + 0.25 * i for i in range(z_dim)])
    transformer = WanVACETransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8,
                                            in_channels=z_dim, out_channels=z_dim, text_dim=16, freq_dim=16,
                                            ffn_dim=32, num_layers=2, rope_max_seq_len=32, vace_layers=[0],
                                            vace_in_channels=2 * z_dim + 64)
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                        num_train_timesteps=1000)
    pipe = WanVACEPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                           transformer=transformer)
    pipe.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_vace_pipeline():
    """``tiny_vace_pipeline(folder, seed=0, z_dim=4) -> folder``: a tiny random diffusers Wan VACE pipeline folder
    (frames 1 + 4m, sides multiples of 16)."""
    return _tiny_vace_pipeline
