"""Monocular depth: the estimator interface, a small U-Net trained by this project, and depth-map files.

Scale convention (docs/design.md §2): depth is z-depth in metres where the source is metric (a depth file, or the
shipped network on procedural worlds, whose sizes are metric), otherwise in the scene's own units.
:func:`normalize_scene_scale` sets a non-metric scene's scale from its median depth, so the rest of the
pipeline always sees a median input depth of ``target_median``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.errors import InputError
from lyra3d.models.configs import DepthNetConfig  # noqa: F401 (the config lives in a torch-free module)
from lyra3d.models.modeling import Pretrained, shipped_weights

DEFAULT_DEPTH_WEIGHTS = "depth"


@dataclass
class DepthResult:
    """``depth (B, 1, H, W)`` z-depth; ``metric`` says whether it is in metres; ``record`` what the estimator is
    and did (JSON-ready; ``report.json`` holds it)."""

    depth: Tensor
    metric: bool
    record: dict = field(default_factory=dict)

    def record_of(self, i: int) -> dict:
        """Image ``i``'s record, as a call on that image alone gives it: the entries of :data:`PER_IMAGE_RECORD`
        (one value per image) cut to that image's."""
        return {k: [v[i]] if k in PER_IMAGE_RECORD and isinstance(v, list) else v for k, v in self.record.items()}


#: Entries of :attr:`DepthResult.record` that hold one value per image of the batch.
PER_IMAGE_RECORD = ("scale_factor", "focal_length_px")


@runtime_checkable
class DepthEstimator(Protocol):
    """Anything that maps images ``(B, 3, H, W)`` in [0, 1] to z-depth. ``intrinsics (B, 4)`` (fx, fy, cx, cy)
    may be passed when known; estimators that do not use them ignore them. An estimator whose output
    saturates at a far limit (a network's sky) may say so in a ``max_depth`` attribute: the teacher treats
    depth at that limit as unknown."""

    def __call__(self, images: Tensor, intrinsics: Tensor | None = None) -> DepthResult: ...


# -- the network --------------------------------------------------------------------------------------------
def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


class DepthNet(Pretrained):
    """A small U-Net predicting log z-depth from an RGB image."""

    config_class = DepthNetConfig
    model_type = "lyra3d-depth-unet"
    part = "depth"

    def __init__(self, config: DepthNetConfig):
        super().__init__()
        self.config = config
        ch = [config.base_channels * 2**i for i in range(config.levels)]
        self.stem = _block(5, ch[0])  # rgb + normalised pixel coordinates (x, y)
        self.down = nn.ModuleList(_block(ch[i], ch[i + 1]) for i in range(config.levels - 1))
        self.up = nn.ModuleList(_block(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(config.levels - 1)))
        self.head = nn.Conv2d(ch[0], 1, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, float(np.log(5.0)))

    def forward(self, images: Tensor) -> Tensor:
        """``images (B, 3, H, W)`` in [0, 1] → log z-depth ``(B, 1, H, W)`` (H, W any size)."""
        b, _, h, w = images.shape
        m = 2 ** (self.config.levels - 1)
        ph, pw = (-h) % m, (-w) % m
        x = F.pad(images * 2 - 1, (0, pw, 0, ph), mode="replicate")
        yy, xx = torch.meshgrid(torch.linspace(-1, 1, h + ph, device=x.device, dtype=x.dtype),
                                torch.linspace(-1, 1, w + pw, device=x.device, dtype=x.dtype), indexing="ij")
        x = torch.cat([x, xx.expand(b, 1, -1, -1), yy.expand(b, 1, -1, -1)], 1)
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.avg_pool2d(skips[-1], 2)))
        x = skips.pop()
        for block in self.up:
            skip = skips.pop()
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False), skip], 1))
        log_depth = self.head(x)[..., :h, :w]
        lo, hi = np.log(self.config.min_depth), np.log(self.config.max_depth)
        return log_depth.clamp(lo, hi)


class NetworkDepth:
    """A :class:`DepthEstimator` over a :class:`DepthNet` (metric on procedural worlds)."""

    def __init__(self, model: DepthNet):
        self.model = model.eval()

    @property
    def max_depth(self) -> float:
        """The network's far limit, where it saturates the sky."""
        return self.model.config.max_depth

    @classmethod
    def from_pretrained(cls, directory: str | Path | None = None, device: str | torch.device = "cpu") -> "NetworkDepth":
        """The shipped network (``directory=None``) or one saved by ``lyra3d train depth``."""
        directory = Path(directory) if directory is not None else shipped_weights(DEFAULT_DEPTH_WEIGHTS)
        return cls(DepthNet.from_pretrained(directory, device))

    @torch.no_grad()
    def __call__(self, images: Tensor, intrinsics: Tensor | None = None) -> DepthResult:
        check_images(images)
        cfg = self.model.config
        p = next(self.model.parameters())
        h, w = images.shape[-2:]
        x = images.to(p.device, p.dtype)
        if (h, w) != (cfg.height, cfg.width):
            x = F.interpolate(x, size=(cfg.height, cfg.width), mode="bilinear", antialias=True, align_corners=False)
        depth = self.model(x).exp()
        if (h, w) != (cfg.height, cfg.width):
            depth = F.interpolate(depth, size=(h, w), mode="bilinear", align_corners=False)
        record = {"kind": "metric", "model": type(self.model).__name__, "model_type": self.model.model_type,
                  "done": f"the lyra3d depth network's metric z-depth (trained on procedural worlds), at {w}x{h}"}
        return DepthResult(depth.to(images.device, images.dtype), metric=True, record=record)


# -- depth maps from files ------------------------------------------------------------------------------------
DEPTH_FILE_SUFFIXES = (".npy", ".npz", ".png", ".tif", ".tiff", ".exr")


def load_depth_file(path: str | Path, png_scale: float = 1000.0) -> Tensor:
    """Read a z-depth map as ``(1, 1, H, W)`` float32.

    ``.npy``/``.npz`` (float array, first array of an npz), 16-bit ``.png`` in millimetres (divided by
    ``png_scale``), float ``.tif(f)``, or ``.exr`` (first channel) where imageio can read it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"depth file not found: {path}")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_FILE_SUFFIXES:
        raise InputError(f"unsupported depth file {path.name}; use one of {', '.join(DEPTH_FILE_SUFFIXES)}")
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arr = z[z.files[0]]
        else:
            import imageio.v3 as iio

            arr = iio.imread(path)
            if suffix == ".png":
                if arr.dtype != np.uint16:
                    raise InputError(f"{path.name} is an {arr.dtype} PNG; depth PNGs must be 16-bit millimetres")
                arr = arr.astype(np.float32) / png_scale
    except InputError:
        raise
    except Exception as e:  # numpy and imageio raise many types for unreadable files
        raise InputError(f"cannot read depth file {path} ({type(e).__name__}); save it as .npy float32") from None
    arr = np.asarray(arr, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[..., 0] if arr.shape[-1] <= 4 else arr[0]
    if arr.ndim != 2:
        raise InputError(f"depth file {path.name} holds an array of shape {arr.shape}; expected (H, W)")
    return torch.from_numpy(arr.copy())[None, None]


class FileDepth:
    """A :class:`DepthEstimator` that returns a depth map read from disk (metric unless told otherwise)."""

    def __init__(self, path: str | Path, metric: bool = True):
        self.depth = load_depth_file(path)
        self.metric = metric

    def __call__(self, images: Tensor, intrinsics: Tensor | None = None) -> DepthResult:
        if tuple(self.depth.shape[-2:]) != tuple(images.shape[-2:]):
            raise InputError(f"depth map is {self.depth.shape[-1]}x{self.depth.shape[-2]} but the image is "
                             f"{images.shape[-1]}x{images.shape[-2]}: give a depth map of the image's size")
        return DepthResult(self.depth.to(images).expand(images.shape[0], 1, -1, -1), self.metric)


# -- helpers ------------------------------------------------------------------------------------------------------
def check_images(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"images must be (B, 3, H, W), got {tuple(images.shape)}")
    if not torch.isfinite(images).all():
        raise InputError("images contain NaN or infinite values")


def normalize_scene_scale(depth: Tensor, metric: bool, target_median: float = 1.0) -> tuple[Tensor, float]:
    """Scale a non-metric depth map so its median is ``target_median``; metric depth is kept.

    Returns the depth and the factor applied (1.0 for metric depth).
    """
    if metric:
        return depth, 1.0
    valid = depth[(depth > 0) & torch.isfinite(depth)]
    if valid.numel() == 0:
        raise InputError("depth has no positive finite value to set the scene's scale from")
    factor = target_median / float(valid.median())
    return depth * factor, factor


def scale_invariant_log_loss(log_pred: Tensor, depth: Tensor, mask: Tensor, lam: float = 0.85) -> Tensor:
    """SILog (Eigen et al.): variance of the log error over masked pixels, plus ``1 - lam`` of its mean²."""
    err = (log_pred - torch.log(depth.clamp_min(1e-6))) * mask
    n = mask.flatten(1).sum(-1).clamp_min(1)
    mean = err.flatten(1).sum(-1) / n
    mean_sq = (err**2).flatten(1).sum(-1) / n
    return (mean_sq - lam * mean**2).clamp_min(0).sqrt().mean()
