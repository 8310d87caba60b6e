"""Video files: write frame tensors to MP4 (H.264) or GIF, atomically, and read videos back."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from lyra3d.core.files import atomic_path
from lyra3d.errors import InputError
from lyra3d.io.images import (
    IMAGE_SUFFIXES,
    NEUTRAL_BACKGROUND,
    _bit_depth,
    _check_background,
    _check_file,
    _check_size,
    _check_target,
    _decode,
    _fit_words,
    _frame_count,
    _load_image,
    _one_line,
    _plan_fit,
    _render_fit,
    _rgb_words,
    _working,
)

#: Largest accepted video frame side, in pixels (8K UHD is 7680 x 4320); checked before decoding.
MAX_VIDEO_SIDE = 8192
#: Most frames :func:`load_video` reads when ``max_frames`` is not given.
MAX_VIDEO_FRAMES = 2000


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`load_video` found and did.

    Attributes:
        path: the file (or folder of frames) read.
        format: the codec (ffmpeg's name, e.g. ``"h264"``), Pillow's format name (``"GIF"``) or
            ``"frames"`` for a folder.
        size: ``(width, height)`` of the decoded frames (after any rotation the file asks for).
        fps: frames per second (24 when the file does not say).
        frames: frames read.
        frames_in_file: frames in the file, or ``None`` when only a full decode would tell.
        truncated: reading stopped at ``max_frames`` (or :data:`MAX_VIDEO_FRAMES`) before the end.
        alpha_background, conversions, fit, box, pad_color, scale, output_size: as in :class:`ImageInfo`.
    """

    path: str
    format: str | None
    size: tuple[int, int]
    fps: float
    frames: int
    frames_in_file: int | None
    truncated: bool
    alpha_background: tuple[float, float, float] | None
    conversions: tuple[str, ...]
    fit: str
    box: tuple[int, int, int, int]
    pad_color: tuple[float, float, float] | None
    scale: float
    output_size: tuple[int, int]

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        w, h = self.size
        count = f"{self.frames} frames" + (" (truncated)" if self.truncated else "")
        parts = [f"{Path(self.path).name}: {self.format or 'video'} {w}×{h} at {self.fps:g} fps, {count}"]
        parts.extend(self.conversions)
        if self.alpha_background is not None:
            parts.append(f"transparency composited over {_rgb_words(self.alpha_background)}")
        parts.append(_fit_words(self.fit, self.box, self.pad_color, self.scale, self.output_size))
        return "; ".join(parts)


# -- videos ----------------------------------------------------------------------------------------------
def load_video(path: str | Path, width: int, height: int, max_frames: int | None = None, fit: str = "crop",
               *, background: Sequence[float] = NEUTRAL_BACKGROUND) -> tuple[Tensor, VideoInfo]:
    """Read a video as ``(T, 3, height, width)`` float32 in [0, 1], each frame fitted like
    :func:`load_image` (center-crop or pad to the target aspect, Lanczos resampling).

    ``path`` is a video file that ffmpeg reads (MP4, MOV, MKV, WebM, AVI, ...), an animated GIF/WebP/PNG
    or multi-page TIFF (Pillow), or a folder of frame images (sorted by name, all the same size).
    ``max_frames`` keeps the first frames only; without it at most :data:`MAX_VIDEO_FRAMES` are read and a
    longer video is refused. The frame size is checked against :data:`MAX_VIDEO_SIDE` from the header,
    before any frame is decoded.

    Raises:
        InputError: (one line) missing, empty, unreadable or corrupt; no video stream or zero frames; a
            single frame ("for one image use --image"); frames too small or too large; too many frames.
    """
    width, height = _check_target(width, height, fit)
    background = _check_background(background)
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 2):
        raise InputError(f"max_frames must be a whole number >= 2, got {max_frames}")
    path = Path(path)
    if path.is_dir():
        return _load_frame_folder(path, width, height, max_frames, fit, background)
    _check_file(path, "a video", "give an MP4, MOV, WebM or GIF video")
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError):
        im = None
    except Exception:
        im = None
    if im is not None and im.format == "MPEG":  # Pillow identifies MPEG-1 but cannot decode it: ffmpeg can
        im.close()
        im = None
    if im is not None:
        with im:
            return _load_pillow_video(im, path, width, height, max_frames, fit, background)
    return _load_ffmpeg_video(path, width, height, max_frames, fit, background)


def _single_frame(path: Path) -> InputError:
    return InputError(f"{path} has a single frame; a video needs at least 2 frames; for one image use --image")


def _limit(max_frames: int | None) -> int:
    return max_frames if max_frames is not None else MAX_VIDEO_FRAMES


def _too_long(path: Path, n: int | str) -> InputError:
    return InputError(f"{path} has {n} frames, more than {MAX_VIDEO_FRAMES}; "
                      f"pass max_frames (--max-frames) to read the first ones")


def _stack(frames: list[np.ndarray], path: Path) -> Tensor:
    if len(frames) == 0:
        raise InputError(f"{path} holds no video frames; give a video with at least 2 frames")
    if len(frames) == 1:
        raise _single_frame(path)
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2), dtype=np.float32))


def _load_pillow_video(im, path, width, height, max_frames, fit, background):
    fmt, size = im.format, im.size
    n = _frame_count(im, path)
    _check_size(path, *size, max_side=MAX_VIDEO_SIDE)
    if n < 2:
        raise _single_frame(path)
    if max_frames is None and n > MAX_VIDEO_FRAMES:
        raise _too_long(path, n)
    plan = _plan_fit(*size, width, height, fit)
    duration = im.info.get("duration")
    fps = 1000.0 / float(duration) if duration else 24.0
    frames, notes, alpha_any, pad = [], [], False, None
    count = min(n, _limit(max_frames))
    depth = _bit_depth(im)
    for i in range(count):
        try:
            im.seek(i)
        except EOFError:
            break
        except Exception as e:
            raise InputError(f"{path} is corrupt at frame {i} ({_one_line(e)}); re-export it") from None
        _decode(im, path)
        if im.size != size:
            raise InputError(f"{path} changes frame size at frame {i} ({im.size[0]}×{im.size[1]} after "
                             f"{size[0]}×{size[1]}); re-export it with one size")
        frame_notes: list[str] = []
        work, is_float = _working(im, frame_notes, str(path), depth)
        arr, alpha, pad = _render_fit(work, is_float, plan, background, pad_color=pad)
        alpha_any |= alpha
        notes.extend(x for x in frame_notes if x not in notes)
        frames.append(arr)
    video = _stack(frames, path)
    return video, VideoInfo(
        path=str(path), format=fmt, size=tuple(size), fps=round(fps, 4), frames=len(frames),
        frames_in_file=n, truncated=len(frames) < n, alpha_background=background if alpha_any else None,
        conversions=tuple(notes), fit=plan.fit, box=plan.box, pad_color=pad, scale=round(plan.scale, 6),
        output_size=(width, height))


def _ffmpeg_reason(e: BaseException) -> str:
    """The telling line of an imageio-ffmpeg error (which carries ffmpeg's whole log)."""
    lines = [" ".join(x.split()) for x in str(e).splitlines() if x.strip()]
    keys = ("moov atom not found", "Invalid data", "does not contain any stream", "No such file",
            "Permission denied", "End of file", "Error opening input", "Error")
    for key in keys:
        for line in lines:
            if key in line:
                return line.split("] ", 1)[-1][:160] if "] " in line else line[:160]
    return lines[0][:160] if lines else type(e).__name__


def _load_ffmpeg_video(path, width, height, max_frames, fit, background):
    import imageio_ffmpeg

    limit = _limit(max_frames)
    # one frame more than the limit tells "longer than allowed" apart from "exactly the limit"
    gen = imageio_ffmpeg.read_frames(str(path), output_params=["-frames:v", str(limit + 1)])
    try:
        try:
            meta = next(gen)
        except Exception as e:
            reason = _ffmpeg_reason(e)
            if "does not contain any stream" in reason:
                raise InputError(f"{path} holds no video frames (no video stream); give a video with at "
                                 "least 2 frames") from None
            raise InputError(f"{path} is not a readable video ({reason}); give an MP4, MOV, WebM or GIF "
                             "video") from None
        w, h = (int(v) for v in meta["size"])
        _check_size(path, w, h, max_side=MAX_VIDEO_SIDE)
        fps = float(meta.get("fps") or 0) or 24.0
        duration = float(meta.get("duration") or 0)
        estimate = int(round(duration * fps)) if duration > 0 else None
        if max_frames is None and estimate is not None and estimate > MAX_VIDEO_FRAMES * 1.05:
            raise _too_long(path, f"about {estimate}")
        plan = _plan_fit(w, h, width, height, fit)
        from PIL import Image

        frames, truncated, pad = [], False, None
        for i, raw in enumerate(_frames(gen, path)):
            if i == limit:
                if max_frames is None:
                    raise _too_long(path, f"over {limit}")
                truncated = True
                break
            arr = np.frombuffer(raw, np.uint8).reshape(h, w, 3)
            frame, _, pad = _render_fit(Image.fromarray(arr), False, plan, background, pad_color=pad)
            frames.append(frame)
    finally:
        gen.close()
    video = _stack(frames, path)
    rotate = int(meta.get("rotate") or 0)
    notes = (f"rotated {rotate}° as the file asks",) if rotate else ()
    return video, VideoInfo(
        path=str(path), format=meta.get("codec"), size=(w, h), fps=round(fps, 4), frames=len(frames),
        frames_in_file=None, truncated=truncated, alpha_background=None, conversions=notes, fit=plan.fit,
        box=plan.box, pad_color=pad, scale=round(plan.scale, 6),
        output_size=(width, height))


def _frames(gen, path: Path) -> Iterator[bytes]:
    while True:
        try:
            raw = next(gen)
        except StopIteration:
            return
        except Exception as e:
            raise InputError(f"{path} is corrupt or truncated ({_ffmpeg_reason(e)}); re-export or "
                             "re-download it") from None
        yield raw


def _load_frame_folder(path: Path, width, height, max_frames, fit, background):
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{path} is a folder without frame images ({', '.join(IMAGE_SUFFIXES)}); "
                         "give a video file or a folder of frames")
    if len(files) == 1:
        raise _single_frame(path)
    if max_frames is None and len(files) > MAX_VIDEO_FRAMES:
        raise _too_long(path, len(files))
    frames, infos = [], []
    for f in files[:_limit(max_frames)]:
        frame, info = _load_image(f, width, height, fit, background, infos[0].pad_color if infos else None)
        if infos and info.upright_size != infos[0].upright_size:
            s0, s1 = infos[0].upright_size, info.upright_size
            raise InputError(f"{f} is {s1[0]}×{s1[1]} but {files[0].name} is {s0[0]}×{s0[1]}; "
                             "give frames of one size")
        frames.append(frame)
        infos.append(info)
    first = infos[0]
    notes = tuple(dict.fromkeys(n for i in infos for n in i.conversions))
    alpha = next((i.alpha_background for i in infos if i.alpha_background is not None), None)
    return torch.stack(frames), VideoInfo(
        path=str(path), format="frames", size=first.upright_size, fps=24.0, frames=len(frames),
        frames_in_file=len(files), truncated=len(frames) < len(files), alpha_background=alpha,
        conversions=notes, fit=first.fit, box=first.box, pad_color=first.pad_color, scale=first.scale,
        output_size=(width, height))


VIDEO_SUFFIXES = (".mp4", ".gif")


def to_uint8(frames: Tensor) -> np.ndarray:
    """``(T, 3, H, W)`` floats in [0, 1] to ``(T, H, W, 3)`` uint8."""
    if frames.ndim != 4 or frames.shape[1] != 3:
        raise InputError(f"frames must be (T, 3, H, W), got {tuple(frames.shape)}")
    return (frames.detach().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def write_video(frames: Tensor, path: str | Path, fps: float = 24.0, quality: int = 8) -> Path:
    """Write ``frames (T, 3, H, W)`` in [0, 1] to ``path`` (``.mp4``: H.264 yuv420p; ``.gif``).

    Odd sizes are padded to even for H.264. The file appears only when complete (written to a temporary
    name in the same folder, then renamed).
    """
    import imageio.v3 as iio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_SUFFIXES:
        raise InputError(f"unsupported video format {path.suffix!r}; use {' or '.join(VIDEO_SUFFIXES)}")
    arr = to_uint8(frames)
    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            h, w = arr.shape[1:3]
            arr = np.pad(arr, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            iio.imwrite(tmp, arr, plugin="FFMPEG", extension=".mp4", fps=fps, codec="libx264",
                        quality=quality, macro_block_size=1, pixelformat="yuv420p")
        else:
            iio.imwrite(tmp, arr, extension=".gif", duration=1000.0 / fps, loop=0)
    return path


def read_video(path: str | Path) -> tuple[Tensor, float]:
    """Read a video as ``(T, 3, H, W)`` floats in [0, 1] and its frame rate."""
    import imageio.v3 as iio

    path = Path(path)
    if not path.is_file():
        raise InputError(f"video file not found: {path}")
    try:
        arr = iio.imread(path, index=None)
        meta = iio.immeta(path, exclude_applied=False)
    except Exception as e:  # imageio raises many types for unreadable files
        raise InputError(f"cannot read video {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise InputError(f"{path} holds no frames")
    fps = float(meta.get("fps") or (1000.0 / meta["duration"] if meta.get("duration") else 24.0))
    return torch.from_numpy(np.ascontiguousarray(arr[..., :3])).permute(0, 3, 1, 2).float() / 255, fps
