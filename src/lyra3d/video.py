"""Video files: write frame tensors to MP4 (H.264) or GIF, atomically, and read videos back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lyra3d.errors import InputError
from lyra3d.files import atomic_path

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
