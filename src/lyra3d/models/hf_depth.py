"""Depth from a ``transformers`` depth-estimation folder (Depth Anything V1/V2, DPT, Depth Pro, ZoeDepth, GLPN) as a
lyra3d :class:`~lyra3d.models.depth.DepthEstimator`, and :func:`load_depth`, which loads any depth folder: lyra3d's
own network or a transformers one. Local folders only (``local_files_only=True``); ``transformers`` (extra
``real``) is imported when such a folder loads, never when lyra3d is imported.

What comes out (docs/design.md §2, §5b):

* Metric models (ZoeDepth, Depth Pro, GLPN, Depth Anything with ``depth_estimation_type == "metric"``) give
  z-depth in metres: kept as it is.
* Relative models (DPT, Depth Anything relative) give inverse depth (disparity) up to an unknown scale and shift.
  :func:`inverse_depth_to_depth` assumes zero shift: ``z = 1 / d``. A disparity ``<= 0`` (the sky, to these models)
  and a depth beyond ``SKY_RATIO`` × the scene's near depth (its 5th percentile) are unknown (0), which the
  teacher treats as sky. The scale is then set as for every non-metric scene
  (:func:`~lyra3d.models.depth.normalize_scene_scale`): the median of the known depths becomes
  :data:`RELATIVE_MEDIAN_DEPTH`, the median depth of the procedural worlds the shipped teacher was trained on.

Every result carries a record of what was done (``DepthResult.record``), which ``report.json`` holds.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from pathlib import Path

import torch
from torch import Tensor

from lyra3d.errors import InputError
from lyra3d.models.depth import DepthResult, NetworkDepth, check_images, normalize_scene_scale

#: The median z-depth (metres) a relative model's scene is scaled to: the median non-sky depth of the procedural
#: worlds at the default camera (6.98 m over the 12 held-out worlds 1000000-1000011), the scale the shipped teacher
#: and decoder were trained at.
RELATIVE_MEDIAN_DEPTH = 7.0
#: A relative model's depths beyond this × the scene's near depth (5th percentile) are unknown (the sky).
SKY_RATIO = 50.0
#: What each transformers depth model outputs after its image processor's post-processing: "metric" z-depth in
#: metres, "inverse" depth up to scale and shift, or "config" (Depth Anything: its ``depth_estimation_type``).
OUTPUTS = {"depth_anything": "config", "prompt_depth_anything": "config", "dpt": "inverse", "depth_pro": "metric",
           "zoedepth": "metric", "glpn": "metric"}
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
PROCESSOR_NAME = "preprocessor_config.json"


# -- the convention -------------------------------------------------------------------------------------------
def inverse_depth_to_depth(inverse: Tensor, target_median: float = RELATIVE_MEDIAN_DEPTH,
                           sky_ratio: float = SKY_RATIO) -> tuple[Tensor, list[float]]:
    """A relative model's inverse depth ``(B, 1, H, W)`` → z-depth under the project's scale convention.

    Zero shift is assumed (``z = 1 / d``); ``d <= 0`` (or not finite) and depths beyond ``sky_ratio`` × the
    image's 5th-percentile depth are unknown (0). Each image is then scaled so the median of its known depths is
    ``target_median``. Returns the depth and each image's factor (the depth is ``factor / d``)."""
    valid = torch.isfinite(inverse) & (inverse > 0)
    depth = torch.where(valid, 1.0 / torch.where(valid, inverse, torch.ones_like(inverse)), torch.zeros_like(inverse))
    out, factors = [], []
    for d in depth:
        known = d[d > 0]
        if known.numel() == 0:
            raise InputError("the depth model found no positive inverse depth in the image (all sky?); use "
                             "another depth model")
        near = torch.quantile(known.float()[:: max(1, known.numel() // 100_000)], 0.05)
        d = torch.where(d <= sky_ratio * near, d, torch.zeros_like(d))
        d, factor = normalize_scene_scale(d, metric=False, target_median=target_median)
        out.append(d)
        factors.append(factor)
    return torch.stack(out), factors


# -- loading ----------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_transformers():
    """transformers' warnings and progress bars off while a folder loads (a CLI run prints its own lines)."""
    from transformers.utils import logging

    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


def read_hf_config(directory: Path) -> dict:
    """``config.json`` of a transformers depth folder, after checking the folder is complete (one line else)."""
    from lyra3d.models.checks import read_config

    if not directory.is_dir():
        raise InputError(f"depth folder not found: {directory}; give a local folder holding a transformers depth "
                         "model (config.json, model.safetensors, preprocessor_config.json); nothing is downloaded")
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory} has no config.json: it is not a depth model folder (a lyra3d depth network "
                         "or a transformers depth model such as Depth Anything)")
    raw = read_config(directory / "config.json")
    kind = raw.get("model_type")
    if kind not in OUTPUTS:
        raise InputError(f"{directory} holds a {kind or 'model without model_type'}, not a depth model lyra3d "
                         f"reads (transformers {', '.join(sorted(OUTPUTS))}, or a lyra3d depth network)")
    if not any((directory / f).is_file() for f in WEIGHT_FILES):
        raise InputError(f"{directory} has no weights file ({WEIGHT_FILES[0]}); nothing is downloaded: copy the "
                         "complete model folder there")
    if not (directory / PROCESSOR_NAME).is_file():
        raise InputError(f"{directory} has no {PROCESSOR_NAME} (the model's image processor); nothing is "
                         "downloaded: copy the complete model folder there")
    return raw


class TransformersDepth:
    """A :class:`~lyra3d.models.depth.DepthEstimator` over a ``transformers`` depth-estimation model and its image
    processor (module docstring: what is done to metric and relative outputs)."""

    def __init__(self, model, processor, directory: Path | None = None,
                 target_median: float = RELATIVE_MEDIAN_DEPTH):
        self.model, self.processor = model.eval(), processor
        self.directory, self.target_median = directory, target_median
        cfg = model.config
        output = OUTPUTS.get(cfg.model_type, "inverse")
        if output == "config":
            output = "metric" if getattr(cfg, "depth_estimation_type", "relative") == "metric" else "inverse"
        self.output = output

    @property
    def metric(self) -> bool:
        return self.output == "metric"

    @property
    def max_depth(self) -> float | None:
        """A metric model's far limit, where it saturates (the sky), when its config says one."""
        if not self.metric:
            return None
        cfg = self.model.config
        if cfg.model_type == "zoedepth":
            bins = getattr(cfg, "bin_configurations", None) or []
            return max((float(b["max_depth"]) for b in bins if "max_depth" in b), default=None)
        limit = getattr(cfg, "max_depth", None)
        return float(limit) if limit else None

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "TransformersDepth":
        """The model and image processor saved in ``directory`` (local files only; one-line errors)."""
        directory = Path(directory).expanduser()
        read_hf_config(directory)
        try:
            from transformers import AutoImageProcessor, AutoModelForDepthEstimation
        except ImportError:
            raise InputError(f"{directory} is a transformers depth model: install the extra "
                             "(pip install 'lyra3d[real]')") from None
        with quiet_transformers():
            try:
                model = AutoModelForDepthEstimation.from_pretrained(str(directory), local_files_only=True)
                processor = AutoImageProcessor.from_pretrained(str(directory), local_files_only=True)
            except ImportError as e:  # e.g. Depth Pro's image processor needs torchvision
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise InputError(f"cannot load the depth model in {directory}: a package it needs is missing "
                                 f"({first[:160]})") from None
            except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                fix = "install what it names (e.g. pip install torchvision)" if "could be imported" in first else \
                    "nothing is downloaded: copy the complete model folder there"
                raise InputError(f"cannot load the depth model in {directory} ({first[:200]}); {fix}") from None
        return cls(model.to(device), processor, directory)

    def save_pretrained(self, directory: str | Path) -> Path:
        """The model and its image processor, as :meth:`from_pretrained` reads them."""
        self.model.save_pretrained(str(directory))
        self.processor.save_pretrained(str(directory))
        return Path(directory)

    @torch.no_grad()
    def __call__(self, images: Tensor, intrinsics: Tensor | None = None) -> DepthResult:
        """``images (B, 3, H, W)`` in [0, 1] → z-depth ``(B, 1, H, W)`` at the input size (metres for a metric
        model, else the convention's scale); ``result.record`` says what was done."""
        check_images(images)
        b, _, h, w = images.shape
        p = next(self.model.parameters())
        with quiet_transformers():
            inputs = self.processor(images=list(images.detach().float().cpu()), do_rescale=False,
                                    return_tensors="pt")
            outputs = self.model(pixel_values=inputs["pixel_values"].to(p.device, p.dtype))
            outputs.predicted_depth = outputs.predicted_depth.float()
            post = self.processor.post_process_depth_estimation
            kwargs = {"target_sizes": [(h, w)] * b}
            if "source_sizes" in inspect.signature(post).parameters:  # ZoeDepth removes its padding
                kwargs["source_sizes"] = [(h, w)] * b
            try:
                done = post(outputs, **kwargs)
            except (NameError, ImportError) as e:  # transformers 5's PIL ZoeDepth processor calls torchvision here
                raise InputError(f"the image processor of {self.directory or type(self.model).__name__} needs "
                                 f"torchvision to post-process ({type(e).__name__}: {e}); pip install torchvision"
                                 ) from None
        raw = torch.stack([d["predicted_depth"].reshape(h, w) for d in done])[:, None].float()
        record = {"kind": "metric" if self.metric else "relative", "model": type(self.model).__name__,
                  "model_type": self.model.config.model_type,
                  "folder": str(self.directory) if self.directory is not None else None,
                  "model_input": list(inputs["pixel_values"].shape[-2:])}
        if self.metric:
            depth = torch.where(torch.isfinite(raw) & (raw > 0), raw, torch.zeros_like(raw))
            record["done"] = f"metric z-depth kept in metres, resized to {w}x{h}"
            focal = [d.get("focal_length") for d in done]
            if all(f is not None for f in focal):  # Depth Pro's own focal estimate set its metric scale
                record["focal_length_px"] = [round(float(f), 3) for f in focal]
                record["done"] += " (scale from the model's own focal-length estimate; the camera is unchanged)"
        else:
            depth, factors = inverse_depth_to_depth(raw, self.target_median)
            record["done"] = (f"inverse depth -> z-depth = factor / inverse depth (zero shift assumed; inverse depth "
                              f"<= 0 and depths beyond {SKY_RATIO:g}x the 5th percentile are unknown: sky), median "
                              f"scaled to {self.target_median:g}, resized to {w}x{h}")
            record["scale_factor"] = [round(f, 6) for f in factors]
            record["median_depth"] = self.target_median
        return DepthResult(depth.to(images.device, images.dtype), self.metric, record)


# -- any depth folder -------------------------------------------------------------------------------------------
def load_depth(directory: str | Path | None = None, device: str | torch.device = "cpu"):
    """A depth estimator from a folder: lyra3d's own network (its config.json's ``model_type`` starts with
    ``lyra3d-``; ``None``: the shipped one) or a transformers depth-estimation model (:class:`TransformersDepth`)."""
    if directory is None:
        return NetworkDepth.from_pretrained(None, device)
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise InputError(f"depth folder not found: {directory}; give a lyra3d depth network or a local "
                         "transformers depth model folder (nothing is downloaded)")
    try:
        kind = json.loads((directory / "config.json").read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        kind = None
    if isinstance(kind, str) and kind.startswith("lyra3d-"):
        return NetworkDepth.from_pretrained(directory, device)
    return TransformersDepth.from_pretrained(directory, device)
