"""``lyra3d generate``: an image, a prompt or a video → a scene folder (:mod:`lyra3d.pipelines`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import typer

from lyra3d.cli.app import StageBars, app, err, progress_bar, warning_line
from lyra3d.cli.batch import RayCommand, check_batch_options, run_batch
from lyra3d.core import limits as L
from lyra3d.core.files import check_output
from lyra3d.errors import InputError


def warn_untrained(model: str, known: Sequence[int], trained_on: str, got: int) -> None:
    """One warning line unless ``got`` is one of ``known``, the frame counts ``model`` was trained on (its
    config's ``trained_frames``; empty: not recorded, no warning). ``trained_on`` says them, with one ``{}``
    for the counts; this run reads ``got``."""
    if known and got not in known:
        counts = trained_on.format(" and ".join(str(n) for n in known))
        warning_line(f"the {model} was trained on {counts}; at {got} it decodes a rougher scene (see its model "
                     "card)")


def _check_optimize_options(weights, overrides: dict, optimize_steps, optimize_seconds, checked=None) -> None:
    """``--optimize-steps``/``--optimize-seconds`` only where the settings (the weights' ``pipeline.json`` and
    the options) say ``reconstruct`` optimize; ``checked``: those settings when already made."""
    if optimize_steps is None and optimize_seconds is None:
        return
    if checked is None:
        from lyra3d import pipelines as pl
        from lyra3d.pipelines.weights import resolve_weights

        _, settings = resolve_weights(weights)
        checked = (pl.GenerateConfig.from_dict(settings) if settings else pl.GenerateConfig()).replace(**overrides)
    if checked.reconstruct != "optimize":
        raise InputError(f"{'--optimize-steps' if optimize_steps is not None else '--optimize-seconds'} is for "
                         "--reconstruct optimize")


@app.command(cls=RayCommand)
def generate(
    image: Optional[Path] = typer.Option(None, "--image", "-i", help="Input image (PNG, JPEG, WebP, TIFF, ...); "
                                         "another aspect is center-cropped (see --fit)."),
    text: Optional[str] = typer.Option(None, "--text", "--prompt", "-t", help="Text prompt instead of an image "
                                       "(text → image → 3D; needs text-to-image weights)."),
    video: Optional[Path] = typer.Option(None, "--video", "-v", help="Input video instead of an image (video → 4D: "
                                         "MP4/MOV/WebM/GIF/..., or a folder of frames; a still camera is assumed)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (written whole or not at all): scene.ply, "
                             "flythrough.mp4, input_view.png, cameras.json, report.json; for --video "
                             "gaussians/scene_t000.ply... (one per output time), flythrough.mp4, bullet_time.mp4, "
                             "input_view.png, cameras.json, report.json."),
    force: bool = typer.Option(False, "--force", "-f", help="Replace an existing output folder."),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="Weights folder DIR/{depth,tokenizer,"
                                           "video_model,decoder,text_to_image}, each optional (missing parts: the "
                                           "shipped ones)."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Depth model folder, local only (nothing is "
                                         "downloaded): a transformers depth-estimation model (Depth Anything V1/V2, "
                                         "DPT, Depth Pro, ZoeDepth, ...; pip install 'lyra3d[real]') or a lyra3d "
                                         "depth network; replaces the depth part."),
    video_model: Optional[Path] = typer.Option(None, "--video-model", help="Video model folder, local only: a "
                                               "diffusers Wan 2.1 VACE pipeline (model_index.json; 1.3B or 14B; pip "
                                               "install 'lyra3d[real]'): the warped 3D cache is its control video, "
                                               "its VAE the tokenizer; or a lyra3d video model. Replaces the video "
                                               "model part."),
    text_to_image: Optional[Path] = typer.Option(None, "--text-to-image", help="--text: a text-to-image folder, "
                                                 "local only (nothing is downloaded): a diffusers pipeline "
                                                 "(model_index.json: SD, SDXL, SD3, PixArt, Sana, Flux, ...; pip "
                                                 "install 'lyra3d[real]') or a lyra3d one; replaces the shipped "
                                                 "model."),
    trajectories: Optional[str] = typer.Option(None, help="Comma-separated trajectories (left, right, up, zoom_out, "
                                               "zoom_in, spiral, down, orbit, dolly, static), or N for the first N "
                                               "of Lyra's six (default: all six)."),
    movement_factor: Optional[float] = typer.Option(None, "--movement-factor", min=0.001, max=L.MAX_MOVEMENT_FACTOR, help="Scale of the trajectories' "
                                                    "camera motion (default: 1)."),
    steps: Optional[int] = typer.Option(None, min=1, max=L.MAX_STEPS, help="Sampler steps of the video model (default: 4)."),
    guidance: Optional[float] = typer.Option(None, min=0.0, max=L.MAX_GUIDANCE, help="Classifier-free guidance of "
                                             "the video model (1: none, the default; a Wan VACE teacher wants ~5)."),
    seed: Optional[int] = typer.Option(None, min=0, max=2**63 - 1, help="Random seed; the same seed gives the same scene (default: 0)."),
    preset: Optional[str] = typer.Option(None, help="Resolution preset (default: default = 320x176, 17 frames per "
                                         "trajectory, the shipped models' native size); official = NVIDIA's released "
                                         "Lyra at 1280x704, 121 frames, with --weights DIR (docs/official_lyra.md)."),
    frames: Optional[int] = typer.Option(None, "--frames", min=1, max=L.MAX_FRAMES, help="Frames per trajectory, 1 + 4m (5, 9, 17, ...; "
                                         "default: the preset's); fewer is faster; the shipped decoder was trained "
                                         "on 9 and 17 (5 is rougher). For --video: the frames read, spread evenly "
                                         "over the video (a shorter video has frames repeated; the shipped 4D "
                                         "decoder was trained on 17)."),
    times: Optional[int] = typer.Option(None, "--times", min=1, max=L.MAX_OUTPUT_TIMES, help="--video: the scene at this many times spread over "
                                        "the clip (default: one per distinct frame read); each costs a decoder pass."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=2, max=L.MAX_READ_FRAMES, help="--video: read only the first N frames "
                                             "of the file (then --frames of them are used)."),
    fit: Optional[str] = typer.Option(None, help="An image of another aspect: crop (center) or pad (default: crop)."),
    keep_input: Optional[str] = typer.Option(None, "--keep-input", help="Image/text → 3D: on puts the input's own "
                                             "Gaussians (one per pixel at its depth) in the scene, fused with the "
                                             "decoder's; off: the decoder's alone (default: on)."),
    reconstruct: Optional[str] = typer.Option(None, "--reconstruct", help="Image/text → 3D: decoder (the 3DGS "
                                              "decoder, one pass) or optimize (fit Gaussians to the teacher's frames "
                                              "from the input's own, gsplat's densification; slower) (default: "
                                              "decoder)."),
    optimize_steps: Optional[int] = typer.Option(None, "--optimize-steps", min=1, max=L.MAX_OPTIMIZE_STEPS,
                                                 help="--reconstruct optimize: the step budget (default: 300)."),
    optimize_seconds: Optional[float] = typer.Option(None, "--optimize-seconds", help="--reconstruct optimize: a "
                                                     "time budget in seconds (default: none)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    video_memory: Optional[str] = typer.Option(None, "--video-memory", help="A Wan VACE video model on a GPU: auto "
                                               "(the fastest that fits the free memory; default), none (all parts on "
                                               "the GPU), model_offload (one part at a time) or group_offload (one "
                                               "block at a time: the least memory)."),
    vae_tiling: Optional[str] = typer.Option(None, "--vae-tiling", help="A Wan VACE video model's VAE in tiles: "
                                             "auto (sides over 512 px, and under group_offload; default), on or "
                                             "off."),
    keep_frames: bool = typer.Option(False, "--keep-frames", help="Also write the teacher's frames, "
                                     "teacher/<trajectory>.mp4."),
    flythrough_frames: int = typer.Option(48, "--flythrough-frames", min=2, max=L.MAX_VIDEO_FRAMES, help="Frames of flythrough.mp4 (at least 2)."),
    flythrough_path: str = typer.Option("flythrough", "--flythrough-path", help="Camera path of flythrough.mp4: "
                                        "flythrough (smooth, seeded), orbit, dolly, spiral, left, right, ..."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
    images: Optional[str] = typer.Option(None, "--images", help="Many scenes: a folder of images or a glob "
                                         "('photos/*.jpg'); one scene folder per image under --out, a rerun skips "
                                         "finished ones, OUT/summary.jsonl at the end."),
    videos: Optional[str] = typer.Option(None, "--videos", help="Many scenes: a folder of videos or a glob."),
    prompts: Optional[Path] = typer.Option(None, "--prompts", help="Many scenes: a text file, one prompt a line."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, max=1024, help="Many scenes: scenes per "
                                             "batch (default: adapts to free GPU memory; 2 on a CPU)."),
    ray: Optional[str] = typer.Option(None, "--ray", help="Many scenes on a Ray cluster: --ray alone starts a local "
                                      "one, --ray ADDRESS joins one (needs the ray extra)."),
    ray_workers: Optional[int] = typer.Option(None, "--ray-workers", min=1, help="Ray workers (default: one per "
                                              "GPU, or per CPU slot with --device cpu)."),
) -> None:
    """Generate a 3D Gaussian scene from one image or a text prompt (scene.ply, a fly-through video, the input
    view, the cameras and a report: timings, Gaussian count, input-view PSNR), or a 4D scene from a video
    (a PLY per output time, a fly-through while time runs, a bullet-time video, ...)."""
    import time

    from lyra3d.io.prompts import validate_prompt
    from lyra3d.models.checks import check_weights_configs

    if preset == "official":  # NVIDIA's released parts (docs/official_lyra.md)
        from lyra3d.cli.generate_official import generate_official

        return generate_official(
            image, out, weights, depth, device, force=force, flythrough_frames=flythrough_frames,
            flythrough_path=flythrough_path, quiet=quiet, text=text, video=video, images=images, videos=videos,
            prompts=prompts, video_model=video_model, text_to_image=text_to_image, ray=ray, ray_workers=ray_workers,
            batch_size=batch_size, times=times, max_frames=max_frames, reconstruct=reconstruct,
            optimize_steps=optimize_steps, optimize_seconds=optimize_seconds,
            overrides={"trajectories": trajectories, "movement_factor": movement_factor, "steps": steps,
                       "guidance": guidance, "seed": seed, "num_frames": frames, "fit": fit,
                       "keep_frames": keep_frames or None, "keep_input": keep_input})
    if check_batch_options(image, text, video, images, videos, prompts):
        if force:
            raise InputError("--force is for one scene; a batch resumes into its folder (remove a scene folder to "
                             "redo it)")
        if videos is not None and reconstruct is not None:
            raise InputError("--reconstruct is for --images and --prompts (a video's scenes come from the 4D decoder)")
        if video_model is not None:
            raise InputError("--video-model is for one scene; for many, put it in a weights folder (--weights DIR "
                             "holding DIR/video_model)")
        if text_to_image is not None and prompts is None:
            raise InputError("--text-to-image is for --prompts (it makes each input image from its prompt)")
        if video_memory is not None or vae_tiling is not None:
            raise InputError("--video-memory and --vae-tiling are for one scene (and lyra3d sdg); for many, put "
                             "them in the weights folder's pipeline.json")
        over = {"trajectories": trajectories, "movement_factor": movement_factor, "steps": steps, "seed": seed,
                "guidance": guidance,
                "preset": preset, "num_frames": frames, "fit": fit, "keep_frames": keep_frames or None,
                "output_times": times, "keep_input": keep_input, "reconstruct": reconstruct,
                "optimize_steps": optimize_steps, "optimize_seconds": optimize_seconds}
        if over["trajectories"] is not None:
            from lyra3d.pipelines.config import parse_trajectories

            over["trajectories"] = parse_trajectories(trajectories)
        over = {k: v for k, v in over.items() if v is not None}
        _check_optimize_options(weights, over, optimize_steps, optimize_seconds)
        return run_batch(images=images, videos=videos, prompts=prompts, out=out, weights=weights, device=device,
                         batch_size=batch_size, ray=ray, ray_workers=ray_workers, flythrough_frames=flythrough_frames,
                         flythrough_path=flythrough_path, quiet=quiet, overrides=over,
                         folders={"depth": depth, "text_to_image": text_to_image})
    if ray is not None or batch_size is not None or ray_workers is not None:
        raise InputError("--ray, --ray-workers and --batch-size are for many scenes: --images, --videos or --prompts")
    if sum(x is not None for x in (image, text, video)) != 1:
        raise InputError('give exactly one of --image PATH, --text "a prompt" or --video PATH')
    if text_to_image is not None and text is None:
        raise InputError("--text-to-image is for --text only (it makes the input image from the prompt)")
    if video is None and (times is not None or max_frames is not None):
        raise InputError(f"{'--times' if times is not None else '--max-frames'} is for --video only")
    check_output(out, force, "folder")  # before any import of torch: a refusal is quick
    start = time.perf_counter()
    prompt = validate_prompt(text) if text is not None else None
    check_weights_configs(weights)  # every config.json, before torch loads

    from lyra3d import pipelines as pl
    from lyra3d.core import flythrough as fly
    from lyra3d.core.device import environment
    from lyra3d.pipelines import video_to_4d as pl4
    from lyra3d.pipelines.config import parse_trajectories
    from lyra3d.pipelines.image_to_3d import load_input_image
    from lyra3d.pipelines.outputs import save_scene4d
    from lyra3d.pipelines.weights import resolve_weights

    if flythrough_path not in fly.PATHS:
        raise InputError(f"unknown --flythrough-path {flythrough_path!r}; choose from {', '.join(fly.PATHS)}")
    if not 2 <= flythrough_frames <= L.MAX_VIDEO_FRAMES:
        raise InputError(f"--flythrough-frames must be from 2 to {L.MAX_VIDEO_FRAMES}, got {flythrough_frames}")
    if video is not None and keep_input is not None:
        raise InputError("--keep-input is for --image and --text (a video's frames are not kept as Gaussians)")
    if video is not None and reconstruct is not None:
        raise InputError("--reconstruct is for --image and --text (a video's scenes come from the 4D decoder)")
    overrides = {"trajectories": parse_trajectories(trajectories) if trajectories is not None else None,
                 "movement_factor": movement_factor, "steps": steps, "guidance": guidance, "seed": seed,
                 "preset": preset,
                 "num_frames": frames, "fit": fit, "keep_frames": keep_frames or None, "output_times": times,
                 "keep_input": keep_input, "reconstruct": reconstruct, "optimize_steps": optimize_steps,
                 "optimize_seconds": optimize_seconds, "video_memory": video_memory, "vae_tiling": vae_tiling}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _, settings = resolve_weights(weights)  # a bad weights folder or bad settings fail here, before any work
    base = pl.GenerateConfig.from_dict(settings) if settings else pl.GenerateConfig()
    checked = base.replace(device=device, **overrides)
    _check_optimize_options(weights, overrides, optimize_steps, optimize_seconds, checked)
    for line in checked.warnings():
        warning_line(line)
    picture = info = None
    call = dict(overrides)
    if image is not None:
        picture, info = load_input_image(image, checked.resolution, checked.fit)
    elif video is not None:
        if max_frames is not None and not 2 <= max_frames <= L.MAX_READ_FRAMES:
            raise InputError(f"--max-frames must be from 2 to {L.MAX_READ_FRAMES}, got {max_frames}")
        t0 = time.perf_counter()
        picture, info = pl4.load_input_video(video, checked.resolution, checked.fit, max_frames)
        call["fps"], read_s = info.fps, time.perf_counter() - t0

    cls = pl.TextTo3DPipeline if prompt is not None else pl4.VideoTo4DPipeline if video is not None \
        else pl.ImageTo3DPipeline
    folders = {"depth": depth, **({"text_to_image": text_to_image} if prompt is not None else {}),
               **({"video_model": video_model} if video_model is not None else {})}
    memory = {k: overrides[k] for k in ("video_memory", "vae_tiling") if k in overrides}  # read when models load
    pipe = cls.from_pretrained(weights, device=device, **folders,
                               **({"config": base.replace(device=device, **memory)} if memory else {}))
    if prompt is not None and not quiet:
        unknown = pipe.unknown_words(prompt)
        if unknown:
            warning_line(f"the text-to-image model does not know {', '.join(unknown)}; it describes procedural "
                         "worlds (colours, shapes, floors, skies)")
    stages = pipe.stages(**overrides)  # checks the settings against the models
    decoder = (pipe.image_to_3d if prompt is not None else pipe).decoder
    if video is None and not quiet and checked.reconstruct == "decoder":
        warn_untrained("3DGS decoder", decoder.config.trained_frames, "{} frames per trajectory", checked.frames)
    if video is not None:
        read = len(pipe.frame_indices(len(picture), str(video), **overrides))  # too short fails before any work
        if not quiet:
            warn_untrained("4D decoder", decoder.config.trained_frames, "clips of {} frames", read)
    with progress_bar(quiet) as bar:
        rows = StageBars(bar, stages)  # one row per stage: the pipeline's, then the saving's
        if prompt is not None:
            scene = pipe(prompt, progress=rows, **call)
        else:
            scene = pipe(picture, progress=rows, info=info, **call)
        timings = {"load_models": pipe.load_seconds, **scene.timings}
        if video is not None:  # the file was decoded here, before the models loaded
            timings["read_video"] += read_s
        extra = {"command": "generate", "device": str(pipe.device), "environment": environment(),
                 "models": pipe.model_versions(), "timings_s": {k: round(v, 4) for k, v in timings.items()}}
        save = save_scene4d if video is not None else pl.save_scene
        record = save(scene, out, force=force, flythrough_frames=flythrough_frames, flythrough_path=flythrough_path,
                      report=extra, progress=rows, started=start)
    if not quiet:
        count = record["gaussians"]
        what = f"{len(count)} times × {max(count):,} Gaussians" if isinstance(count, list) else f"{count:,} Gaussians"
        err.print(f"wrote {out}: {what}, input-view PSNR {record['input_view_psnr']:.2f} dB, "
                  f"{time.perf_counter() - start:.1f} s", highlight=False, soft_wrap=True)
