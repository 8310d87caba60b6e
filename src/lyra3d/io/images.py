"""User images, read like a careful tool (videos: :mod:`lyra3d.io.video`, which shares the fitting here).

:func:`load_image` reads any common still image (PNG, JPEG, WebP, TIFF, GIF, BMP, AVIF; RGBA, LA and
palette transparency, 1/8/16-bit and float grayscale, CMYK, colour profiles, EXIF orientation) into a
``(3, H, W)`` float32 tensor in [0, 1] at the model's size. An image of another aspect is
center-cropped (``fit="crop"``) or padded (``fit="pad"``) to the target aspect, then resampled with a
Lanczos filter; :class:`ImageInfo` records everything that was done, in source pixels, for the report.

:func:`lyra3d.io.video.load_video` does the same for every frame of a video (MP4/MOV/WebM/... through ffmpeg; GIF,
animated WebP/PNG through Pillow) or of a folder of frame images. Its size is checked from the file's
header before any frame is decoded, and frames are resampled one by one, so memory holds the output only.

:func:`validate_prompt` tidies a text prompt and refuses an empty one.

Every problem with the input raises :class:`~lyra3d.errors.InputError` with one line that names the
file, the problem and the fix; the CLI prints it and exits with code 2.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lyra3d.errors import InputError


def fit_image_tensor(image: Tensor, width: int, height: int, fit: str = "crop") -> tuple[Tensor, ImageInfo]:
    """An image tensor ``(3, H, W)`` in [0, 1] brought to ``width × height`` exactly as :func:`load_image`
    brings a file: center-cropped or padded (with its edges' mean colour) to the aspect, then resampled by
    the same Lanczos resampler. A tensor of 8-bit values (``uint8 / 255``, as decoded from a PNG) goes the
    file's own 8-bit way, so the same photo as a path or as a tensor gives identical pixels (JPEGs that
    :func:`load_image` decodes at a reduced size differ slightly); other floats are resampled per channel at
    float precision. The :class:`ImageInfo` says what was done.

    A video ``(T, 3, H, W)`` is fitted frame by frame alike (padding with the first frame's edge colour, as
    :func:`lyra3d.io.video.load_video` does) and comes back as ``(T, 3, height, width)``."""
    from PIL import Image

    if not isinstance(image, Tensor):
        raise InputError(f"image must be a tensor (3, H, W) or a file path, got {type(image).__name__}")
    if image.ndim not in (3, 4) or image.shape[-3] != 3:
        raise InputError(f"image must be (3, H, W) RGB, got shape {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InputError(f"image must be floats in [0, 1], got {image.dtype}")
    h, w = image.shape[-2:]
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise InputError(f"image is {w}×{h} px, too small (at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} px)")
    if not bool(torch.isfinite(image).all()):
        raise InputError("image has NaN or infinite values")
    lo, hi = float(image.min()), float(image.max())
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"image values must be in [0, 1], got [{lo:.3g}, {hi:.3g}] (divide 8-bit values by 255)")
    plan = _plan_fit(w, h, width, height, fit)
    frames, pad = [], None
    for frame in image.detach().float().clamp(0, 1).reshape(-1, 3, h, w).cpu():
        arr = np.ascontiguousarray(frame.permute(1, 2, 0).numpy())
        levels = np.rint(arr * 255)
        if np.array_equal(levels.astype(np.float32) / 255.0, arr):  # 8-bit values: the file's way
            work, is_float = Image.fromarray(levels.astype(np.uint8), "RGB"), False
        else:
            work, is_float = [Image.fromarray(np.ascontiguousarray(arr[..., c]), "F") for c in range(3)], True
        out, _, frame_pad = _render_fit(work, is_float, plan, NEUTRAL_BACKGROUND, pad_color=pad)
        pad = pad if pad is not None else frame_pad
        frames.append(_to_tensor(out))
    batch = torch.stack(frames).to(image.device)
    info = ImageInfo(path="<tensor>", format=None, size=(w, h), mode="RGB", bit_depth=32, exif_orientation=1,
                     upright_size=(w, h), alpha_background=None, conversions=(), fit=plan.fit, box=plan.box,
                     pad_color=pad, scale=round(plan.scale, 6), output_size=(width, height))
    return (batch if image.ndim == 4 else batch[0]).contiguous(), info


#: How an input of another aspect is brought to the target aspect.
FITS = ("crop", "pad")
#: Colour that transparent pixels are composited over: a neutral mid gray (sRGB values in [0, 1]).
NEUTRAL_BACKGROUND: tuple[float, float, float] = (0.5, 0.5, 0.5)
#: Smallest accepted width and height of an image or video frame, in pixels.
MIN_IMAGE_SIDE = 16
#: Largest accepted image, in pixels (a 150-megapixel photo decodes to about 450 MB of 8-bit RGB).
MAX_IMAGE_PIXELS = 150_000_000
#: File suffixes taken as frames when a folder is given as a video.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
_FORMATS_HINT = "give a PNG, JPEG, WebP or TIFF"
_EXIF_ORIENTATION = 0x0112
_RESAMPLE_GAP = 3.0  # Pillow reduces by whole factors first when downscaling more than this (fast, same look)


# -- reports ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageInfo:
    """What :func:`load_image` found and did.

    Attributes:
        path: the file read.
        format: Pillow's name of the file format (``"PNG"``, ``"JPEG"``, ``"WEBP"``, ``"TIFF"``, ...).
        size: ``(width, height)`` as stored in the file.
        mode: Pillow mode of the file (``"RGB"``, ``"RGBA"``, ``"L"``, ``"I;16"``, ``"F"``, ``"CMYK"``, ...).
        bit_depth: bits per channel in the file (1, 8, 16 or 32).
        exif_orientation: the EXIF orientation tag (1 = upright; 6 = the camera was turned clockwise).
        upright_size: ``(width, height)`` after the EXIF orientation was applied.
        alpha_background: the colour transparent pixels were composited over, or ``None`` (opaque image).
        conversions: what else was done to the pixels, in words (``"CMYK to RGB"``, ``"grayscale to RGB"``).
        fit: ``"crop"``, ``"pad"``, or ``"none"`` when the image already had the target aspect.
        box: ``(left, top, right, bottom)`` of the region that fills the output, in pixels of the upright
            image; for ``"pad"`` it reaches outside the image (negative or beyond its size) by the padding.
        pad_color: the padding colour (mean of the image edges next to the padding), or ``None``.
        scale: output pixels per source pixel (horizontal).
        output_size: ``(width, height)`` of the returned image.
        frames: frames or pages in the file; the first one is used.
    """

    path: str
    format: str | None
    size: tuple[int, int]
    mode: str
    bit_depth: int
    exif_orientation: int
    upright_size: tuple[int, int]
    alpha_background: tuple[float, float, float] | None
    conversions: tuple[str, ...]
    fit: str
    box: tuple[int, int, int, int]
    pad_color: tuple[float, float, float] | None
    scale: float
    output_size: tuple[int, int]
    frames: int = 1

    @property
    def exif_rotated(self) -> bool:
        return self.exif_orientation != 1

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """One line for the report, e.g. ``photo.jpg: JPEG 4032×3024 RGB 8-bit; EXIF orientation 6
        applied (upright 3024×4032); center-cropped to 3024×1663 at (0, 1184); scaled ×0.106 to 320×176``."""
        w, h = self.size
        parts = [f"{Path(self.path).name}: {self.format or 'image'} {w}×{h} {self.mode} {self.bit_depth}-bit"]
        if self.frames > 1:
            parts.append(f"first of {self.frames} frames")
        if self.exif_rotated:
            parts.append(f"EXIF orientation {self.exif_orientation} applied (upright "
                         f"{self.upright_size[0]}×{self.upright_size[1]})")
        parts.extend(self.conversions)
        if self.alpha_background is not None:
            parts.append(f"transparency composited over {_rgb_words(self.alpha_background)}")
        parts.append(_fit_words(self.fit, self.box, self.pad_color, self.scale, self.output_size))
        return "; ".join(parts)


def _rgb_words(c: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.3g}" for v in c) + ")"


def _fit_words(fit: str, box, pad_color, scale: float, out: tuple[int, int]) -> str:
    l, t, r, b = box
    if fit == "crop":
        what = f"center-cropped to {r - l}×{b - t} at ({l}, {t}); "
    elif fit == "pad":
        what = f"padded to {r - l}×{b - t} with {_rgb_words(pad_color)}; "
    else:
        what = ""
    return f"{what}scaled ×{scale:.3g} to {out[0]}×{out[1]}"


# -- geometry --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Fit:
    fit: str
    box: tuple[int, int, int, int]  # in upright source pixels
    size: tuple[int, int]  # upright source size
    out: tuple[int, int]

    @property
    def scale(self) -> float:
        return self.out[0] / (self.box[2] - self.box[0])


def _check_target(width, height, fit: str) -> tuple[int, int]:
    if fit not in FITS:
        raise InputError(f"fit must be {' or '.join(FITS)}, got {fit!r}")
    try:
        ok = int(width) == width and int(height) == height and width >= 1 and height >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"target size must be positive whole pixels, got {width}×{height}")
    return int(width), int(height)


def _plan_fit(w: int, h: int, width: int, height: int, fit: str) -> _Fit:
    """Box of the upright ``w × h`` source that maps onto ``width × height``: centered, target aspect."""
    box = (0, 0, w, h)
    if w * height > h * width:  # source is wider than the target
        if fit == "crop":
            cw = max(1, round(h * width / height))
            left = (w - cw) // 2
            box = (left, 0, left + cw, h)
        else:
            ph = max(1, round(w * height / width))
            top = (ph - h) // 2
            box = (0, -top, w, ph - top)
    elif w * height < h * width:  # source is taller
        if fit == "crop":
            ch = max(1, round(w * height / width))
            top = (h - ch) // 2
            box = (0, top, w, top + ch)
        else:
            pw = max(1, round(h * width / height))
            left = (pw - w) // 2
            box = (-left, 0, pw - left, h)
    kind = "none" if box == (0, 0, w, h) else fit
    return _Fit(kind, box, (w, h), (width, height))


# -- pixels ----------------------------------------------------------------------------------------------
def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return text[:200] if text else type(e).__name__


def _bit_depth(im) -> int:
    if im.mode == "1":
        return 1
    if im.mode.startswith("I;16"):
        return 16
    if im.mode in ("I", "F"):
        return 16 if ";16" in _rawmodes(im) else 32
    return 16 if ";16" in _rawmodes(im) else 8


def _rawmodes(im) -> str:
    try:
        return " ".join(str(getattr(t, "args", t[3] if len(t) > 3 else "")) for t in (im.tile or []))
    except Exception:  # the tile list is a Pillow internal; its form is not promised
        return ""


def _apply_icc(im, notes: list[str]):
    """Convert an RGB/RGBA/CMYK image with an embedded colour profile (other than sRGB) to sRGB."""
    icc = im.info.get("icc_profile")
    if not icc or im.mode not in ("RGB", "RGBA", "CMYK"):
        return im
    try:
        from PIL import ImageCms

        src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        name = (ImageCms.getProfileDescription(src) or "").strip() or "unnamed"
    except Exception:
        notes.append("unreadable colour profile ignored")
        return im
    if "srgb" in name.lower() and im.mode != "CMYK":
        return im
    try:
        out = ImageCms.profileToProfile(im, src, ImageCms.createProfile("sRGB"),
                                        outputMode="RGBA" if im.mode == "RGBA" else "RGB")
    except Exception:
        notes.append(f"colour profile '{name}' could not be applied; pixels used as they are")
        return im
    notes.append(f"colour profile '{name}' converted to sRGB")
    return out


def _working(im, notes: list[str], label: str, depth: int):
    """Bring a Pillow image to ``RGB``, ``RGBA`` (8-bit) or ``F`` (single band, values in [0, 1]);
    returns ``(image, is_float)``."""
    mode = im.mode
    if depth == 16 and mode in ("RGB", "RGBA"):
        notes.append("16-bit colour read at 8 bits per channel")
    if mode in ("I", "F") or mode.startswith("I;16"):
        f = im.convert("F") if mode != "F" else im
        arr = np.asarray(f)
        if not np.isfinite(arr).all():
            raise InputError(f"{label} has NaN or infinite pixel values; fix or re-export the image")
        lo, hi = float(arr.min()), float(arr.max())
        if mode.startswith("I;16") or (mode == "I" and lo >= 0 and hi <= 65535 and depth == 16):
            notes.append("16-bit grayscale to float")
            return f.point(lambda v: v * (1 / 65535.0)), True
        if lo >= 0 and hi <= 1:
            notes.append(f"{'float' if mode == 'F' else '32-bit'} grayscale used as is")
            return f, True
        if mode == "I" and lo >= 0 and hi <= 65535:
            notes.append("32-bit grayscale read as 16-bit values")
            return f.point(lambda v: v * (1 / 65535.0)), True
        span = hi - lo
        notes.append(f"{'float' if mode == 'F' else '32-bit'} grayscale rescaled from [{lo:.4g}, {hi:.4g}] "
                     "to [0, 1]")
        if span <= 0:
            return f.point(lambda v: 0.0 * v), True
        return f.point(lambda v: v * (1 / span) + (-lo / span)), True
    if mode == "1":
        notes.append("1-bit to 8-bit")
        im, mode = im.convert("L"), "L"
    gray = mode in ("L", "LA", "La")
    transparent = mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in im.info
    if mode == "P":
        notes.append("palette to RGB")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = _apply_icc(im, notes) if mode == "CMYK" else im
        if im.mode == mode:
            notes.append(f"{mode} to RGB" + (" (no colour profile: plain conversion)" if mode == "CMYK" else ""))
    elif mode in ("RGB", "RGBA"):
        im = _apply_icc(im, notes)
    if gray:
        notes.append("grayscale to RGB")
    if transparent:
        im = im.convert("RGBA")
        if im.getextrema()[3][0] == 255:  # alpha channel present but fully opaque
            return im.convert("RGB"), False
        return im, False
    return (im if im.mode == "RGB" else im.convert("RGB")), False


def _resample(im, size: tuple[int, int], box: tuple[float, float, float, float]):
    from PIL import Image

    if im.size == size and tuple(box) == (0, 0, im.size[0], im.size[1]):
        return im
    return im.resize(size, Image.Resampling.LANCZOS, box=box, reducing_gap=_RESAMPLE_GAP)


def _render_fit(im, is_float: bool, plan: _Fit, background: Sequence[float], decoded_ratio=(1.0, 1.0),
                pad_color: Sequence[float] | None = None):
    """Crop/pad and resample a working image (see :func:`_working`; or a list of three float ``F`` bands,
    an RGB image at float precision) to ``plan.out``; returns
    ``(rgb float32 (H, W, 3) in [0, 1], had transparency, pad colour or None)``. The padding colour is
    the mean of the image edges next to the padding unless ``pad_color`` is given (video frames after the
    first use the first frame's, so the padding does not flicker)."""
    W, H = plan.out
    l, t, r, b = plan.box
    w, h = plan.size
    rx, ry = decoded_ratio  # decoded pixels per upright source pixel (JPEG draft decoding)
    if plan.fit == "pad":
        sx, sy = W / (r - l), H / (b - t)
        x0, x1 = round(-l * sx), round((w - l) * sx)
        y0, y1 = round(-t * sy), round((h - t) * sy)
        x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)
        size, box = (x1 - x0, y1 - y0), None
    else:
        size, box = (W, H), (l * rx, t * ry, r * rx, b * ry)
    bands = im if isinstance(im, list) else [im]
    arr = np.stack([np.asarray(_resample(band, size, box or (0, 0, *band.size)), dtype=np.float32)
                    for band in bands], axis=-1)
    arr = arr[..., 0] if len(bands) == 1 else arr  # a Pillow image's own channels, or the bands stacked
    if is_float:  # float bands, already in [0, 1]: one (grayscale) or three (RGB)
        arr = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr
    else:
        arr = arr / 255.0
    alpha = arr.shape[2] == 4
    if alpha:
        a = arr[..., 3:4]
        arr = arr[..., :3] * a + np.asarray(background, np.float32) * (1.0 - a)
    arr = np.clip(arr, 0.0, 1.0)
    if plan.fit != "pad":
        return arr, alpha, None
    if pad_color is None:
        edges = [arr[0], arr[-1]] if (x0, x1) == (0, W) else [arr[:, 0], arr[:, -1]]
        pad = np.concatenate(edges).mean(axis=0)
    else:
        pad = np.asarray(pad_color, np.float32)
    canvas = np.empty((H, W, 3), np.float32)
    canvas[:] = pad
    canvas[y0:y1, x0:x1] = arr
    return canvas, alpha, tuple(round(float(v), 4) for v in pad)


def _to_tensor(arr: np.ndarray) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32))


# -- files -----------------------------------------------------------------------------------------------
def _check_file(path: Path, what: str, hint: str) -> None:
    if not path.exists():
        raise InputError(f"{path} not found; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not {what}; {hint}")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except PermissionError:
        raise InputError(f"cannot read {path} (permission denied); check its permissions") from None
    except OSError as e:
        raise InputError(f"cannot read {path} ({_one_line(e)})") from None
    if size == 0:
        raise InputError(f"{path} is empty (0 bytes); {hint}")


def _sniff_unsupported(path: Path) -> str | None:
    """Name of a known photo/video container that Pillow cannot read, from the file's first bytes."""
    try:
        with path.open("rb") as f:
            head = f.read(32)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "a HEIC/HEIF photo, which this build cannot read; convert it to JPEG or PNG"
        return "a video (MP4/MOV); for a video use --video, for a photo give a PNG, JPEG, WebP or TIFF"
    if head[:4] == b"\x1aE\xdf\xa3" or (head[:4] == b"RIFF" and head[8:12] == b"AVI "):
        return "a video; for a video use --video, for a photo give a PNG, JPEG, WebP or TIFF"
    return None


def _open(path: Path, what: str = "an image"):
    """Open (not decode) with Pillow; one-line errors for everything Pillow refuses."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(path)
    except UnidentifiedImageError:
        other = _sniff_unsupported(path)
        if other:
            raise InputError(f"{path} is {other}") from None
        raise InputError(f"{path} is not {what} (cannot identify image file); {_FORMATS_HINT}") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{path} is too large ({_one_line(e)}); downscale it below "
                         f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels") from None
    except Exception as e:  # Pillow's plugins raise many types (SyntaxError, struct.error, ...) on bad headers
        raise InputError(f"{path} is corrupt ({_one_line(e)}); re-export or re-download it") from None


def _check_size(path: Path, w: int, h: int, max_side: int | None = None) -> None:
    if w < MIN_IMAGE_SIDE or h < MIN_IMAGE_SIDE:
        raise InputError(f"{path} is {w}×{h} px, too small (at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} px); "
                         "give a larger image")
    if max_side is not None and max(w, h) > max_side:
        raise InputError(f"{path} is {w}×{h} px, over the {max_side} px limit on a side; "
                         f"downscale it first (e.g. to 1920×1080)")
    if w * h > MAX_IMAGE_PIXELS:
        raise InputError(f"{path} is {w}×{h} px ({w * h / 1e6:.0f} MP), over the "
                         f"{MAX_IMAGE_PIXELS // 1_000_000} MP limit; downscale it first")


def _frame_count(im, path: Path) -> int:
    try:
        return int(getattr(im, "n_frames", 1) or 1)
    except Exception as e:  # counting walks the file: a damaged frame shows up here
        raise InputError(f"{path} is corrupt ({_one_line(e)}); re-export or re-download it") from None


def _decode(im, path: Path) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as e:
        raise InputError(f"{path} is corrupt or truncated ({_one_line(e)}); re-export or re-download it") from None


# -- images ----------------------------------------------------------------------------------------------
def load_image(path: str | Path, width: int, height: int, fit: str = "crop", *,
               background: Sequence[float] = NEUTRAL_BACKGROUND) -> tuple[Tensor, ImageInfo]:
    """Read an image file as ``(3, height, width)`` float32 sRGB in [0, 1].

    Steps: the EXIF orientation is applied (``ImageOps.exif_transpose``); the first frame of a
    multi-frame file is used; palette, grayscale (1/8/16-bit, 32-bit int, float), CMYK and other modes
    become RGB (an embedded colour profile other than sRGB is converted to sRGB); transparency is
    composited over ``background``; the image is center-cropped (``fit="crop"``) or padded with the mean
    colour of its edges (``fit="pad"``) to the target aspect and resampled with a Lanczos filter.

    Raises:
        InputError: (one line) the file is missing, empty, not an image, corrupt or truncated, smaller than
            :data:`MIN_IMAGE_SIDE` or larger than :data:`MAX_IMAGE_PIXELS`, or has NaN pixels.
    """
    width, height = _check_target(width, height, fit)
    return _load_image(Path(path), width, height, fit, _check_background(background))


def _load_image(path: Path, width: int, height: int, fit: str, background: tuple[float, float, float],
                pad_color: Sequence[float] | None = None) -> tuple[Tensor, ImageInfo]:
    from PIL import ImageOps

    _check_file(path, "an image", _FORMATS_HINT)
    with _open(path) as im:
        fmt, size, mode = im.format, im.size, im.mode
        frames = _frame_count(im, path)
        _check_size(path, *size)
        depth = _bit_depth(im)
        try:
            orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1)
        except Exception:  # a broken EXIF block must not stop a readable image
            orientation = 1
        if orientation not in range(1, 9):
            orientation = 1
        upright = (size[1], size[0]) if orientation in (5, 6, 7, 8) else size
        plan = _plan_fit(*upright, width, height, fit)
        notes: list[str] = []
        if fmt == "JPEG" and mode in ("RGB", "L", "CMYK"):
            _draft(im, plan, notes)
        _decode(im, path)
        try:
            work = ImageOps.exif_transpose(im) if orientation != 1 else im
        except Exception as e:
            raise InputError(f"{path} has an EXIF orientation that cannot be applied ({_one_line(e)}); "
                             "re-export the image") from None
        ratio = (work.size[0] / upright[0], work.size[1] / upright[1])
        work, is_float = _working(work, notes, str(path), depth)
        arr, alpha, pad = _render_fit(work, is_float, plan, background, ratio, pad_color)
    info = ImageInfo(
        path=str(path), format=fmt, size=tuple(size), mode=mode, bit_depth=depth,
        exif_orientation=orientation, upright_size=tuple(upright),
        alpha_background=background if alpha else None, conversions=tuple(notes), fit=plan.fit,
        box=plan.box, pad_color=pad, scale=round(plan.scale, 6), output_size=(width, height), frames=frames,
    )
    return _to_tensor(arr), info


def _check_background(background) -> tuple[float, float, float]:
    try:
        bg = tuple(float(v) for v in background)
    except (TypeError, ValueError):
        bg = ()
    if len(bg) != 3 or not all(0.0 <= v <= 1.0 for v in bg):
        raise InputError(f"background must be three numbers in [0, 1] (RGB), got {background!r}")
    return bg


def _draft(im, plan: _Fit, notes: list[str]) -> None:
    """Let the JPEG decoder scale down by 1/2, 1/4 or 1/8 (DCT scaling) when the output is that small,
    keeping at least twice the output resolution for the Lanczos filter."""
    l, t, r, b = plan.box
    need = 2.0 * max(plan.out[0] / (r - l), plan.out[1] / (b - t))
    if need >= 0.5:
        return
    w, h = im.size
    req = (math.ceil(w * need), math.ceil(h * need))
    before = im.size
    try:
        im.draft(im.mode, req)
    except Exception:
        return
    if im.size != before:
        notes.append(f"decoded at {im.size[0]}×{im.size[1]} (JPEG DCT scaling)")
