"""``lyra3d eval teacher|decoder|decoder4d|video-teacher|photos``: evaluate on held-out procedural worlds against
their ray-cast truth (:mod:`lyra3d.evaluation`), print a Markdown table, optionally write the rows as JSON."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from lyra3d.cli.app import Typer, app
from lyra3d.core import limits as L
from lyra3d.errors import InputError

eval_app = Typer(help="Evaluate the teacher or a decoder on held-out procedural worlds against their ray-cast "
                      "truth; prints a table.")
app.add_typer(eval_app, name="eval")

# options several evaluations share
Steps = Annotated[Optional[int], typer.Option(help="The teacher's sampler steps (default: the teacher's, 4).")]
Guidance = Annotated[Optional[float], typer.Option(help="The teacher's guidance scale (default: the teacher's, "
                                                        "1 = none).")]
TokenizerDir = Annotated[Optional[str], typer.Option("--tokenizer", help="Tokenizer folder (default: the shipped "
                                                                         "one).")]
VideoModelDir = Annotated[Optional[str], typer.Option("--video-model", help="Video model folder (default: the "
                                                                            "shipped one).")]
Frames = Annotated[Optional[int], typer.Option(help="Frames per trajectory, 1 + 4·m (default: the teacher's, 17).")]
TrainWorldsFrom = Annotated[Optional[int], typer.Option(
    "--train-worlds-from", metavar="SEED", help="Score training worlds from this seed instead (to choose settings "
                                                "without looking at the held-out worlds).")]
DecoderDir = Annotated[Optional[str], typer.Option("--decoder", help="3DGS decoder folder (default: the shipped "
                                                                     "one).")]
Decoder4DDir = Annotated[Optional[str], typer.Option("--decoder4d", help="4D decoder folder (required; one from "
                                                                         "`lyra3d train decoder --dynamic 1`).")]
Backend = Annotated[str, typer.Option(help="Rasterizer: auto, gsplat or torch.")]
Device = Annotated[str, typer.Option(help="cpu or cuda.")]
JsonOut = Annotated[Optional[str], typer.Option("--json", help="Also write the settings, seeds, summary and "
                                                               "per-world rows to this JSON file.")]


def _teacher(tokenizer: str | None, video_model: str | None, device: str, steps: int | None,
             guidance: float | None, frames: int | None = None):
    from lyra3d.models.tokenizer import check_trajectory_frames
    from lyra3d.pipelines.teacher import Teacher

    teacher = Teacher.from_pretrained(tokenizer, video_model, device=_device(device))
    if steps is not None:
        teacher.config.steps = steps
    if guidance is not None:
        teacher.config.guidance = guidance
    if frames is not None:
        check_trajectory_frames(frames, teacher.tokenizer.temporal_factor, "--frames")
        teacher.config.num_frames = frames
    return teacher


def _device(device: str):
    from lyra3d.core.device import check_device

    return check_device(device)


def _seeds(worlds: int, train_worlds_from: int | None) -> tuple[list[int], str]:
    from lyra3d.data import worlds as w

    if train_worlds_from is not None:
        return w.train_seeds(worlds, train_worlds_from), "training"
    return w.eval_seeds(worlds), "held-out"


def _report(ctx: typer.Context, rows: list[dict], seeds: list[int], title: str, json_path: str | None,
            extra: dict | None = None) -> None:
    """Print the summary table of ``rows``; with ``json_path`` also write it with the settings (and ``extra``)
    and the rows."""
    from lyra3d.evaluation.report import summarize, table, write_results

    summary = summarize(rows)
    print(table(summary, title))
    if json_path:  # the settings by option name (--json → json, --no-baseline → no_baseline)
        names = {p.name: p.opts[0].lstrip("-").replace("-", "_") for p in ctx.command.params if p.opts}
        settings = {"what": ctx.info_name, **{names.get(k, k): v for k, v in ctx.params.items()}, **(extra or {})}
        write_results(json_path, settings, seeds, summary, rows)


@eval_app.command("teacher")
def eval_teacher(ctx: typer.Context, worlds: Annotated[int, typer.Option(min=1, max=L.MAX_WORLDS, help="Worlds (held-out: seeds from "
                                                                               "1,000,000).")] = 8,
                 frames: Frames = None, train_worlds_from: TrainWorldsFrom = None, steps: Steps = None,
                 guidance: Guidance = None, tokenizer: TokenizerDir = None, video_model: VideoModelDir = None,
                 device: Device = "cpu", json_path: JsonOut = None) -> None:
    """The teacher (depth → 3D cache → video model): its decoded frames vs the ray-cast truth along every
    trajectory, overall and where the cache is empty, against the cache alone."""
    from lyra3d.evaluation.teacher import evaluate_teacher

    teacher = _teacher(tokenizer, video_model, device, steps, guidance, frames)
    seeds, split = _seeds(worlds, train_worlds_from)
    _report(ctx, evaluate_teacher(teacher, seeds), seeds, f"teacher on {len(seeds)} {split} worlds", json_path)


@eval_app.command("decoder")
def eval_decoder(ctx: typer.Context, worlds: Annotated[int, typer.Option(min=1, max=L.MAX_WORLDS, help="Worlds (held-out: seeds from "
                                                                               "1,000,000).")] = 8,
                 decoder: DecoderDir = None,
                 views: Annotated[str, typer.Option(help="Comma-separated trajectory indices the decoder reads "
                                                         "(an ablation; default: all).")] = "",
                 keep_fraction: Annotated[str, typer.Option("--keep-fraction", help="Opacity-rank pruning "
                                                            "share(s) in (0, 1], comma-separated (the first is "
                                                            "the main column).")] = "0.5",
                 frames: Frames = None, train_worlds_from: TrainWorldsFrom = None, steps: Steps = None,
                 guidance: Guidance = None, tokenizer: TokenizerDir = None, video_model: VideoModelDir = None,
                 backend: Backend = "auto", device: Device = "cpu", json_path: JsonOut = None,
                 reconstruct: Annotated[str, typer.Option("--reconstruct", help="decoder, or optimize: per-scene "
                                                          "optimisation from the input's own Gaussians instead "
                                                          "(--decoder, --views, --keep-fraction then unused).")
                                        ] = "decoder",
                 optimize_steps: Annotated[str, typer.Option("--optimize-steps", help="--reconstruct optimize: "
                                                             "step budget(s), comma-separated, each a fresh run "
                                                             "(the first is the main column).")] = "300",
                 optimize_seconds: Annotated[Optional[float], typer.Option(
                     "--optimize-seconds", help="--reconstruct optimize: a time budget per run in seconds.")] = None,
                 strategy: Annotated[str, typer.Option("--strategy", help="--reconstruct optimize: gsplat's "
                                                       "densification, default or mcmc (CUDA), or none.")
                                     ] = "default") -> None:
    """The 3DGS decoder on the teacher's latents: its renders vs the teacher's frames, the input view and the
    ray-cast truth, also between the trajectories. With --reconstruct optimize: per-scene optimisation, scored
    the same way."""
    from lyra3d.evaluation.decoder import evaluate_decoder
    from lyra3d.models.decoder import GaussianDecoder

    if reconstruct not in ("decoder", "optimize"):
        raise InputError(f"--reconstruct must be decoder or optimize, got {reconstruct!r}")
    if reconstruct == "optimize":
        _eval_optimizer(ctx, worlds, optimize_steps, optimize_seconds, strategy, frames, train_worlds_from, steps,
                        guidance, tokenizer, video_model, backend, device, json_path)
        return

    try:
        keep = tuple(float(f) for f in keep_fraction.split(","))
    except ValueError:
        keep = ()
    if not keep or not all(0 < f <= 1 for f in keep):
        raise InputError(f"--keep-fraction takes numbers in (0, 1], comma-separated; got {keep_fraction!r}")
    try:
        picked = [int(v) for v in views.split(",")] if views else None
    except ValueError:
        raise InputError(f"--views takes trajectory indices, comma-separated; got {views!r}") from None
    teacher = _teacher(tokenizer, video_model, device, steps, guidance, frames)
    seeds, split = _seeds(worlds, train_worlds_from)
    model = GaussianDecoder.from_pretrained(decoder) if decoder else GaussianDecoder.default(device)
    rows = evaluate_decoder(teacher, model.to(device), seeds, views=picked, keep_fraction=keep, backend=backend)
    _report(ctx, rows, seeds, f"decoder on {len(seeds)} {split} worlds", json_path)


def _eval_optimizer(ctx, worlds, optimize_steps, optimize_seconds, strategy, frames, train_worlds_from, steps,
                    guidance, tokenizer, video_model, backend, device, json_path) -> None:
    from lyra3d.evaluation.optimize import evaluate_optimizer
    from lyra3d.pipelines.optimize import OptimizeConfig, check_steps

    try:
        budgets = tuple(check_steps(int(v), "--optimize-steps") for v in optimize_steps.split(","))
    except ValueError:
        raise InputError(f"--optimize-steps takes whole numbers, comma-separated; got {optimize_steps!r}") from None
    config = OptimizeConfig(steps=budgets[0], seconds=optimize_seconds, strategy=strategy,
                            backend=backend).validate()
    teacher = _teacher(tokenizer, video_model, device, steps, guidance, frames)
    seeds, split = _seeds(worlds, train_worlds_from)
    used: dict = {}
    rows = evaluate_optimizer(teacher, seeds, budgets, config, backend=backend, used=used,
                              on_row=lambda row: print(json.dumps(row), flush=True))
    _report(ctx, rows, seeds, f"per-scene optimisation ({used.get('strategy')}, {used.get('backend')}) on "
            f"{len(seeds)} {split} worlds, {','.join(map(str, budgets))} steps", json_path, extra=used)


@eval_app.command("decoder4d")
def eval_decoder4d(ctx: typer.Context,
                   decoder4d: Decoder4DDir = None,
                   worlds: Annotated[int, typer.Option(min=1, max=L.MAX_WORLDS, help="Held-out dynamic worlds (seeds from 1,000,000).")] = 8,
                   decoder: DecoderDir = None,
                   no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Skip the static decoder "
                                                                                    "baseline.")] = False,
                   clip_frames: Annotated[int, typer.Option("--clip-frames", help="Frames per clip, 1 + 4·m.")] = 17,
                   width: Annotated[int, typer.Option(help="Clip frame width.")] = 320,
                   height: Annotated[int, typer.Option(help="Clip frame height.")] = 176,
                   steps: Steps = None, guidance: Guidance = None, tokenizer: TokenizerDir = None,
                   video_model: VideoModelDir = None, backend: Backend = "auto", device: Device = "cpu",
                   json_path: JsonOut = None) -> None:
    """The 4D decoder on the video teacher's latents of held-out dynamic clips: its renders at several times
    vs the ray-cast truth at novel cameras and at the input camera, overall and on the moving pixels, against
    the static decoder (--decoder). Prints each world's row as JSON as it is measured, then the table."""
    from lyra3d.data.clips import dynamic_eval_seeds
    from lyra3d.evaluation.decoder4d import evaluate_decoder4d
    from lyra3d.models.decoder import GaussianDecoder
    from lyra3d.models.decoder4d import GaussianDecoder4D

    if not decoder4d:
        raise InputError("eval decoder4d needs --decoder4d DIR (a 4D decoder: lyra3d train decoder --dynamic 1)")
    teacher = _teacher(tokenizer, video_model, device, steps, guidance)
    seeds = dynamic_eval_seeds(worlds)
    d4 = GaussianDecoder4D.from_pretrained(decoder4d, device).eval()
    static = None if no_baseline else \
        (GaussianDecoder.from_pretrained(decoder, device) if decoder else GaussianDecoder.default(device))
    rows = evaluate_decoder4d(teacher, d4, seeds, static_decoder=static, backend=backend, width=width,
                              height=height, num_frames=clip_frames,
                              on_row=lambda row: print(json.dumps(row), flush=True))
    _report(ctx, rows, seeds, f"decoder4d on {len(seeds)} held-out dynamic worlds", json_path)


@eval_app.command("video-teacher")
def eval_video_teacher(ctx: typer.Context,
                       worlds: Annotated[int, typer.Option(min=1, max=L.MAX_WORLDS, help="Held-out dynamic worlds (seeds from "
                                                                "1,000,000).")] = 4,
                       frames: Annotated[int, typer.Option(help="Frames per clip, 1 + 4·m.")] = 17,
                       camera: Annotated[str, typer.Option(help="Camera motion of the input clips: static or a "
                                                                "trajectory name.")] = "static",
                       trajectories: Annotated[str, typer.Option(help="Comma-separated subset of the six "
                                                                      "trajectories (default: all).")] = "",
                       no_baseline: Annotated[bool, typer.Option("--no-baseline", help="Skip the static "
                                                                                        "teacher.")] = False,
                       reversed_clips: Annotated[bool, typer.Option("--reversed", help="Also run the video teacher "
                                                                    "on the time-reversed clips.")] = False,
                       steps: Steps = None, guidance: Guidance = None, tokenizer: TokenizerDir = None,
                       video_model: VideoModelDir = None, device: Device = "cpu", json_path: JsonOut = None) -> None:
    """The video teacher (one 3D cache per input frame) on held-out dynamic clips: its decoded frames vs the
    ray-cast truth at each frame's time, overall and on the moving pixels, against the static teacher run on
    frame 0 alone."""
    from lyra3d.data.clips import CAMERA_MOTIONS, dynamic_eval_seeds
    from lyra3d.evaluation.video_teacher import evaluate_video_teacher

    if camera not in CAMERA_MOTIONS:
        raise InputError(f"unknown --camera {camera!r}; choose from {', '.join(CAMERA_MOTIONS)}")
    teacher = _teacher(tokenizer, video_model, device, steps, guidance)
    if trajectories:
        teacher.config.trajectories = tuple(t.strip() for t in trajectories.split(",") if t.strip())
    seeds = dynamic_eval_seeds(worlds)
    rows = evaluate_video_teacher(teacher, seeds, frames, camera_motion=camera, baseline=not no_baseline,
                                  reverse=reversed_clips)
    _report(ctx, rows, seeds, f"video teacher on {len(seeds)} held-out dynamic worlds (seeds {seeds})", json_path)


@eval_app.command("photos")
def eval_photos(photos: Annotated[str, typer.Argument(help="A folder of photos (with a manifest.json from "
                                                           "examples/real_photos.py: --split picks its split).")],
                out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write photos.json (settings, "
                                                           "summary, rows) and contact_sheet.png here.")] = None,
                split: Annotated[Optional[str], typer.Option(help="Only the photos of this manifest split "
                                                                  "(e.g. heldout).")] = None,
                keep_input: Annotated[Optional[str], typer.Option("--keep-input", help="on or off (default: "
                                                                  "the pipeline's, on).")] = None,
                weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Weights folder (default: "
                                                               "the shipped models).")] = None,
                seed: Annotated[int, typer.Option(help="Random seed of every scene.")] = 0,
                device: Device = "cpu") -> None:
    """Real photos, no ground truth: per photo the scene's input-view PSNR/SSIM and, at the last frame of each
    trajectory, its render vs the input warped there on the pixels the cache covers; a contact sheet."""
    from lyra3d.evaluation.photos import evaluate_photos
    from lyra3d.evaluation.report import summarize, table
    from lyra3d.pipelines import ImageTo3DPipeline

    pipe = ImageTo3DPipeline.from_pretrained(weights, device=_device(device))
    overrides = {"keep_input": keep_input} if keep_input is not None else {}
    rows = evaluate_photos(pipe, photos, out_dir=out, seed=seed, split=split, **overrides)
    numeric = [{k: v for k, v in r.items() if k != "photo"} for r in rows]
    print(table(summarize(numeric), f"{len(rows)} photos from {photos}" + (f" ({split})" if split else "")))
