"""Generated scenes of real photographs, measured without ground truth (issue 21, docs/design.md §7), and the same
measures on held-out procedural worlds, where the truth adds held-out cameras.

Per photo (:func:`evaluate_photos`):

- **input view**: the scene rendered at the input camera vs the input image (PSNR, the scene's own
  ``input_view_psnr``, and SSIM);
- **trajectory-end consistency**: at the last frame of each trajectory, away from the input camera, the
  scene's render vs the input warped there through its depth (the teacher's 3D cache,
  :func:`lyra3d.core.cache3d.warp`), on the pixels the cache covers (PSNR per trajectory, and their mean);
- a **contact sheet** (:func:`write_contact_sheet`): input, input-view render, two novel views per photo.

:func:`evaluate_worlds` runs the pipeline's steps once per held-out world and scores each ``keep_input``
mode on the same teacher output: input view, trajectory-end consistency, and held-out cameras between the
trajectories vs the ray-cast truth (PSNR, SSIM), as ``lyra3d eval decoder`` does for the decoder alone.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from lyra3d.core.cache3d import unproject, warp
from lyra3d.core.cameras import Cameras
from lyra3d.core.gaussians import Gaussians
from lyra3d.core.metrics import mean_psnr, psnr, ssim
from lyra3d.core.render import rasterize
from lyra3d.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")

MANIFEST = "manifest.json"


def photo_paths(photos: str | Path | Sequence[str | Path], split: str | None = None) -> list[Path]:
    """The image files to evaluate: a folder's images (sorted by name; where it holds a ``manifest.json``
    as ``examples/real_photos.py`` writes it, the manifest's photos, only those of ``split`` if given), or
    the given paths."""
    if isinstance(photos, (str, Path)) and Path(photos).is_dir():
        folder = Path(photos)
        manifest = folder / MANIFEST
        if manifest.is_file():
            entries = json.loads(manifest.read_text()).get("photos", [])
            paths = [folder / e["file"] for e in entries if split is None or e.get("split") == split]
        elif split is not None:
            raise InputError(f"{folder} has no {MANIFEST}, so it has no splits; leave the split out")
        else:
            paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif isinstance(photos, (str, Path)):
        if not Path(photos).exists():
            raise InputError(f"no such photo or folder: {photos}")
        paths = [Path(photos)]
    else:
        paths = [Path(p) for p in photos]
    if not paths:
        raise InputError(f"no photos to evaluate in {photos}" + (f" (split {split!r})" if split else ""))
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise InputError(f"photo not found: {missing[0]}")
    return paths


def trajectory_end_cameras(cameras: Cameras, trajectories: int) -> Cameras:
    """The last camera of each of ``trajectories`` equal trajectories in ``cameras`` (trajectory-major)."""
    t = len(cameras) // trajectories
    return cameras[[i * t + t - 1 for i in range(trajectories)]]


def trajectory_end_consistency(gaussians: Gaussians, image: Tensor, depth: Tensor, camera: Cameras,
                               ends: Cameras, backend: str = "auto") -> tuple[list[float], list[float], Tensor]:
    """The scene rendered at ``ends`` vs the input ``image (3, H, W)`` with its ``depth (1, H, W)`` seen by
    ``camera`` warped there (the teacher's cache), on the pixels the cache covers: PSNR and covered share per
    camera, and the renders ``(B, 3, H, W)``."""
    cache = unproject(image[None].float(), depth[None].float(), camera.to(dtype=torch.float32))
    warped = warp(cache, ends.to(image.device, torch.float32))
    render = rasterize(gaussians, ends.to(gaussians.device), backend=backend).rgb.clamp(0, 1).to(image.device)
    scores = psnr(render, warped.rgb, warped.mask)
    covered = warped.mask.flatten(1).mean(1)
    return ([float(s) if float(c) > 0 else float("nan") for s, c in zip(scores, covered)],
            [float(c) for c in covered], render)


def score_scene(scene, backend: str = "auto") -> tuple[dict, list[Tensor]]:
    """A generated :class:`~lyra3d.pipelines.outputs.Scene`'s row (input view PSNR/SSIM, trajectory-end
    consistency per trajectory and mean, Gaussians, seconds) and its contact-sheet images (input, input-view
    render, the last frames of the first and the last trajectory)."""
    if scene.input_depth is None:
        raise InputError("the scene has no input depth to warp the input with (made before issue 21?)")
    g = scene.gaussians
    cam = scene.input_camera.to(g.device)
    image = scene.input_image.float().cpu()
    render = rasterize(g, cam, backend=backend).rgb[0].clamp(0, 1).cpu()
    ends = trajectory_end_cameras(scene.cameras, len(scene.trajectories))
    scores, covered, end_renders = trajectory_end_consistency(g, image, scene.input_depth.cpu(), cam.to("cpu"),
                                                              ends, backend)
    valid = [s for s in scores if s == s]
    row = {"input_view_psnr": scene.input_view_psnr, "input_view_ssim": float(ssim(render, image)),
           "trajectory_end_psnr": sum(valid) / len(valid) if valid else float("nan"),
           "trajectory_end_covered": sum(covered) / len(covered),
           **{f"trajectory_end_psnr_{n}": s for n, s in zip(scene.trajectories, scores)},
           "gaussians": len(g), "seconds": scene.timings.get("total", float("nan"))}
    if scene.keep_input is not None:
        row["input_gaussians"] = scene.keep_input["input_gaussians"]
        row["decoder_gaussians_dropped"] = scene.keep_input["decoder_gaussians_dropped"]
    return row, [image, render, end_renders[0].cpu(), end_renders[-1].cpu()]


def evaluate_photos(pipe, photos: str | Path | Sequence[str | Path], out_dir: str | Path | None = None,
                    seed: int = 0, split: str | None = None, progress: Callable[[str, dict], None] | None = None,
                    **overrides) -> list[dict]:
    """Generate the scene of every photo with ``pipe`` (an :class:`~lyra3d.pipelines.ImageTo3DPipeline`) and
    score it (module docstring). ``out_dir`` (created) receives ``photos.json`` (settings, summary, rows) and
    ``contact_sheet.png``. ``progress(name, row)`` after each photo. ``overrides``: generate settings
    (e.g. ``keep_input="off"``). Returns one row per photo (``photo`` is the file name)."""
    from lyra3d.evaluation.report import summarize

    paths = photo_paths(photos, split)
    rows, sheet = [], []
    for path in paths:
        scene = pipe(path, seed=seed, **overrides)
        row, images = score_scene(scene, scene.config.backend)
        row = {"photo": path.name, **row}
        rows.append(row)
        sheet.append((f"{path.stem}: input | input view {row['input_view_psnr']:.1f} dB | "
                      f"{scene.trajectories[0]} end | {scene.trajectories[-1]} end "
                      f"(consistency {row['trajectory_end_psnr']:.1f} dB)", images))
        if progress is not None:
            progress(path.name, row)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        numeric = [{k: v for k, v in r.items() if k != "photo"} for r in rows]
        record = {"settings": {"seed": seed, "split": split, **{k: v for k, v in overrides.items()}},
                  "photos": [r["photo"] for r in rows], "summary": summarize(numeric), "rows": rows}
        (out / "photos.json").write_text(json.dumps(record, indent=1) + "\n")
        write_contact_sheet(sheet, out / "contact_sheet.png")
    return rows


def write_contact_sheet(rows: Sequence[tuple[str, Sequence[Tensor]]], path: str | Path, gap: int = 4) -> Path:
    """A PNG with one row per entry: its caption above its images ``(3, H, W)`` side by side (each row's
    images share a height)."""
    import numpy as np
    from PIL import Image, ImageDraw

    if not rows:
        raise InputError("a contact sheet needs at least one row")
    caption = 14
    strips = []
    for _, images in rows:
        h = images[0].shape[-2]
        if any(im.shape[-2] != h for im in images):
            raise InputError("the images of one contact-sheet row must share a height")
        strips.append([(im.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255 + 0.5).astype(np.uint8) for im in images])
    width = max(sum(a.shape[1] for a in s) + gap * (len(s) - 1) for s in strips)
    height = sum(s[0].shape[0] + caption + gap for s in strips)
    sheet = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(sheet)
    y = 0
    for (text, _), strip in zip(rows, strips):
        draw.text((2, y + 1), text, fill="black")
        x = 0
        for a in strip:
            sheet.paste(Image.fromarray(a), (x, y + caption))
            x += a.shape[1] + gap
        y += strip[0].shape[0] + caption + gap
    path = Path(path)
    sheet.save(path)
    return path


@torch.no_grad()
def evaluate_worlds(pipe, seeds: Sequence[int], modes: Sequence[str] = ("off", "on"), seed: int = 0,
                    backend: str = "auto") -> list[dict]:
    """Per procedural world (``seeds``; evaluation seeds are >= 1,000,000): the pipeline's steps once (teacher
    with ``seed``, decoder, opacity pruning), then each ``keep_input`` mode (:func:`keep_input`) on that same
    output, scored at the input camera, at the trajectories' last frames (consistency with the cache) and at
    held-out cameras between the trajectories vs the ray-cast truth. Columns end in ``_<mode>``."""
    from lyra3d.core.cameras import default_camera
    from lyra3d.data import worlds
    from lyra3d.evaluation.teacher import between_cameras
    from lyra3d.pipelines.keep_input import keep_input

    cfg = pipe.config
    p = cfg.resolution
    cam = default_camera(p.width, p.height, p.fov_y_degrees).to(pipe.device)
    rows = []
    for world_seed in seeds:
        world = worlds.make_world(world_seed)
        image = worlds.render(world, cam).rgb[0]
        t0 = time.perf_counter()
        pipe._set_teacher(cfg, cfg.frames)
        gen = pipe.teacher(image, cam, seed=seed)
        raw = pipe.decoder.decode(gen.latents, gen.cameras)
        decoded = raw.prune_by_opacity(keep_fraction=cfg.keep_fraction) if cfg.keep_fraction < 1 else raw
        held = between_cameras(gen)
        truth = worlds.render(world, held)
        ends = trajectory_end_cameras(gen.cameras, len(gen.names))
        row = {"seed": world_seed, "generate_s": time.perf_counter() - t0}
        for mode in modes:
            g, _ = keep_input(decoded, gen.image, gen.depth, cam, mode, pipe.teacher.config.far_ratio)
            inp = rasterize(g, cam, backend=backend).rgb.clamp(0, 1)
            out = rasterize(g, held, backend=backend).rgb.clamp(0, 1)
            scores, _, _ = trajectory_end_consistency(g, gen.image, gen.depth, cam, ends, backend)
            valid = [s for s in scores if s == s]
            row.update({f"input_view_psnr_{mode}": mean_psnr(inp, gen.image[None]),
                        f"heldout_psnr_{mode}": mean_psnr(out, truth.rgb),
                        f"heldout_ssim_{mode}": float(ssim(out, truth.rgb).mean()),
                        f"trajectory_end_psnr_{mode}": sum(valid) / max(1, len(valid)),
                        f"gaussians_{mode}": len(g)})
        rows.append(row)
    return rows
