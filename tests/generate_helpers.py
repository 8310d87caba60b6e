"""Shared by test_pipelines.py, test_generate.py and test_generate4d.py: a weights folder with a small random
3DGS decoder and a small random text-to-image model (the teacher's parts are the shipped ones: the folder
leaves them out), input images, and the CLI checks (``invoke``, ``assert_one_line_error``, ``listing``)."""

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lyra3d.core.cameras import default_camera
from lyra3d.models.decoder import DecoderConfig, GaussianDecoder
from lyra3d.models.text_to_image import TextToImageConfig, TextToImageModel
from lyra3d.data.worlds.captions import caption_vocabulary


def small_decoder(seed: int = 0) -> GaussianDecoder:
    """A random decoder whose output depends on its input (the real one zero-initialises its head)."""
    torch.manual_seed(seed)
    decoder = GaussianDecoder(DecoderConfig(dim=32, depth=2, heads=2))
    with torch.no_grad():
        decoder.head.weight.normal_(0.0, 0.05)
        decoder.ray_in.weight.normal_(0.0, 0.01)
    return decoder.eval()


def small_text_to_image(seed: int = 0) -> TextToImageModel:
    torch.manual_seed(seed)
    model = TextToImageModel(TextToImageConfig(vocab=caption_vocabulary(), dim=32, depth=1, heads=2, text_dim=16, text_depth=1, text_heads=2))
    with torch.no_grad():
        model.out.weight.normal_(0.0, 0.05)
    return model.eval()


def make_weights(root: Path, text_to_image: bool = True) -> Path:
    small_decoder().save_pretrained(root / "decoder")
    if text_to_image:
        small_text_to_image().save_pretrained(root / "text_to_image")
    return root


def world_image(width: int = 320, height: int = 176, seed: int = 1_000_007) -> torch.Tensor:
    from lyra3d.data import worlds

    return worlds.render(worlds.make_world(seed), default_camera(width, height)).rgb[0]


def photo(width: int = 400, height: int = 300) -> torch.Tensor:
    """A procedural world's render stretched to another size and aspect (rendering it there is slower)."""
    small = world_image(160, 96)
    return torch.nn.functional.interpolate(small[None], size=(height, width), mode="bilinear")[0].clamp(0, 1)


def save_png(image: torch.Tensor, path: Path) -> Path:
    arr = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def invoke(*args):
    """``lyra3d ARGS`` in-process (typer's test runner): the result's ``exit_code`` and ``stderr``."""
    from typer.testing import CliRunner

    from lyra3d.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_line_error(code: int, stderr: str, *fragments):
    """Exit code 2 and exactly one line on stderr, ``error: ...``, holding every fragment; no traceback."""
    assert code == 2, stderr
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and lines[0].startswith("error: ")
    for f in fragments:
        assert f in lines[0], lines[0]


def listing(folder: Path) -> list[str]:
    """Every path under ``folder``, relative and sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))
