"""Real photographs as training data that needs no labels (issue 21): the training photos of a folder, their
pseudo-videos (smooth pans and zooms over a photo) for the tokenizer, and random crops for SDG inputs.

A folder written by ``examples/real_photos.py`` holds a ``manifest.json`` whose ``split`` marks each photo;
:func:`training_photo_paths` reads only the ``tune`` split of such a folder (the ``heldout`` photos are only ever
evaluated), and every image of a folder without a manifest (a user's own photos).

:func:`pseudo_video` makes a clip ``(T, 3, H, W)`` from a photo: a window of the output's aspect moves and
zooms smoothly (ease in/out) between two boxes drawn at random, each at least ``min_scale`` of the largest
window the photo holds; frame 0 is the photo seen through the first box (:func:`crop_resize`). There is no
parallax: the camera turns and zooms, which is what the tokenizer must reconstruct (textures of real photos),
not a 3D motion. :func:`random_crop` draws one such box (and a flip) for an SDG input.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from lyra3d.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
MANIFEST = "manifest.json"
TRAIN_SPLIT = "tune"

#: A box ``(x0, y0, width, height)`` in the photo's pixels (floats).
Box = tuple[float, float, float, float]


def training_photo_paths(folder: str | Path) -> list[Path]:
    """The photos of ``folder`` that training may read: with a ``manifest.json`` (``examples/real_photos.py``)
    the ``tune`` split only, in the manifest's order; without one, every image file, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"photo folder not found: {folder}")
    manifest = folder / MANIFEST
    if manifest.is_file():
        try:
            entries = json.loads(manifest.read_text()).get("photos", [])
        except (json.JSONDecodeError, AttributeError):
            raise InputError(f"{manifest} is not a photo manifest (examples/real_photos.py writes one)") from None
        paths = [folder / e["file"] for e in entries if e.get("split") == TRAIN_SPLIT]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise InputError(f"{missing[0]} is listed in {manifest} but missing; write the folder again")
    else:
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise InputError(f"{folder} holds no training photo (PNG/JPEG/...; with a manifest: its '{TRAIN_SPLIT}' split)")
    return paths


def load_photo(path: str | Path, max_side: int = 640) -> Tensor:
    """A photo as ``(3, H, W)`` uint8, RGB, its longer side at most ``max_side`` (Lanczos)."""
    import numpy as np
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im).convert("RGB")
            scale = max_side / max(im.size)
            if scale < 1:
                im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                               Image.Resampling.LANCZOS)
            return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).contiguous()
    except OSError as e:
        raise InputError(f"cannot read photo {path} ({e})") from None


def largest_box(photo_width: int, photo_height: int, aspect: float) -> tuple[float, float]:
    """Width and height of the largest window of ``aspect`` (width / height) inside the photo."""
    if photo_width / photo_height > aspect:
        return photo_height * aspect, float(photo_height)
    return float(photo_width), photo_width / aspect


def random_box(photo_width: int, photo_height: int, aspect: float, min_scale: float,
               generator: torch.Generator) -> Box:
    """A window of ``aspect`` at a random scale in ``[min_scale, 1]`` of :func:`largest_box` (uniform in log
    scale) and a random place inside the photo."""
    bw, bh = largest_box(photo_width, photo_height, aspect)
    u = float(torch.rand((), generator=generator))
    s = math.exp(math.log(min_scale) * (1 - u)) if min_scale < 1 else 1.0
    w, h = bw * s, bh * s
    x0 = float(torch.rand((), generator=generator)) * (photo_width - w)
    y0 = float(torch.rand((), generator=generator)) * (photo_height - h)
    return (x0, y0, w, h)


def crop_resize(photo: Tensor, boxes: Tensor, width: int, height: int, flip: bool = False) -> Tensor:
    """The photo ``(3, H, W)`` (uint8 or float) seen through ``boxes (N, 4)`` (x0, y0, w, h in pixels), each
    resampled bilinearly to ``(height, width)``: ``(N, 3, height, width)`` float in [0, 1] (``flip``: mirrored
    left-right). A box of exactly ``width × height`` pixels at whole-pixel offsets gives the pixels themselves."""
    img = photo.float() / 255 if photo.dtype == torch.uint8 else photo.float()
    _, ph, pw = img.shape
    boxes = boxes.to(img.device, torch.float32)
    n = boxes.shape[0]
    # pixel centres of the output, in the photo's pixel coordinates, then to grid_sample's [-1, 1]
    u = (torch.arange(width, device=img.device, dtype=torch.float32) + 0.5) / width
    v = (torch.arange(height, device=img.device, dtype=torch.float32) + 0.5) / height
    if flip:
        u = u.flip(0)
    x = boxes[:, 0, None] + u[None] * boxes[:, 2, None]  # (N, width)
    y = boxes[:, 1, None] + v[None] * boxes[:, 3, None]  # (N, height)
    gx = (2 * x / pw - 1)[:, None, :].expand(n, height, width)
    gy = (2 * y / ph - 1)[:, :, None].expand(n, height, width)
    grid = torch.stack([gx, gy], -1)
    out = F.grid_sample(img[None].expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out.clamp(0, 1)


def pseudo_video_boxes(photo_width: int, photo_height: int, num_frames: int, width: int, height: int,
                       generator: torch.Generator, min_scale: float = 0.5, max_move: float = 0.25,
                       max_zoom: float = 1.3) -> Tensor:
    """``(T, 4)`` boxes of a pseudo-video: a start box (:func:`random_box`), an end box moved by up to
    ``max_move`` of the start box's size and zoomed by a factor in ``[1/max_zoom, max_zoom]`` (kept inside the
    photo), and smooth (ease in/out) steps between them."""
    aspect = width / height
    x0, y0, w0, h0 = random_box(photo_width, photo_height, aspect, min_scale, generator)
    r = torch.rand(3, generator=generator)
    zoom = math.exp((2 * float(r[0]) - 1) * math.log(max_zoom))
    bw, _ = largest_box(photo_width, photo_height, aspect)
    w1 = min(w0 * zoom, bw)
    h1 = w1 / aspect
    cx = x0 + w0 / 2 + (2 * float(r[1]) - 1) * max_move * w0
    cy = y0 + h0 / 2 + (2 * float(r[2]) - 1) * max_move * h0
    x1 = min(max(cx - w1 / 2, 0.0), photo_width - w1)
    y1 = min(max(cy - h1 / 2, 0.0), photo_height - h1)
    t = torch.linspace(0, 1, num_frames)
    t = t * t * (3 - 2 * t)  # smoothstep: the camera eases in and out
    start, end = torch.tensor([x0, y0, w0, h0]), torch.tensor([x1, y1, w1, h1])
    return start[None] + t[:, None] * (end - start)[None]


def pseudo_video(photo: Tensor, num_frames: int, width: int, height: int, generator: torch.Generator,
                 min_scale: float = 0.5, max_move: float = 0.25, max_zoom: float = 1.3,
                 flip: bool | None = None) -> Tensor:
    """A pseudo-video ``(T, 3, height, width)`` float in [0, 1] of ``photo (3, H, W)``: a smooth pan and zoom
    (:func:`pseudo_video_boxes`), mirrored with probability 1/2 unless ``flip`` is given. The same generator
    state gives the same clip."""
    if photo.ndim != 3 or photo.shape[0] != 3:
        raise InputError(f"photo must be (3, H, W), got {tuple(photo.shape)}")
    boxes = pseudo_video_boxes(photo.shape[-1], photo.shape[-2], num_frames, width, height, generator, min_scale,
                               max_move, max_zoom)
    if flip is None:
        flip = bool(torch.rand((), generator=generator) < 0.5)
    return crop_resize(photo, boxes, width, height, flip)


def random_crop(photo: Tensor, width: int, height: int, generator: torch.Generator,
                min_scale: float = 0.6) -> tuple[Tensor, dict]:
    """One random view of ``photo (3, H, W)`` for an SDG input: a box of :func:`random_box` and a coin-flip
    mirror, resampled to ``(3, height, width)`` float in [0, 1]; returns it and what was done (box, flip)."""
    box = random_box(photo.shape[-1], photo.shape[-2], width / height, min_scale, generator)
    flip = bool(torch.rand((), generator=generator) < 0.5)
    image = crop_resize(photo, torch.tensor([box]), width, height, flip)[0]
    return image, {"box": [round(b, 2) for b in box], "flip": flip}


def photo_clips(photos: list[Tensor], count: int, num_frames: int, width: int, height: int, seed: int,
                **motion) -> Tensor:
    """``count`` pseudo-videos ``(count, T, 3, H, W)`` uint8, cycling through ``photos``, drawn from ``seed``
    (fixed clips, e.g. for evaluation)."""
    gen = torch.Generator().manual_seed(seed)
    clips = [pseudo_video(photos[i % len(photos)], num_frames, width, height, gen, **motion) for i in range(count)]
    return (torch.stack(clips) * 255 + 0.5).to(torch.uint8)
