"""The ``lyra3d`` command line: a thin layer over the Python API.

Every command turns a :class:`~lyra3d.errors.LyraError` into one line on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from lyra3d.errors import InputError, LyraError
from lyra3d.core.device import environment
from lyra3d.pipelines.config import parse_trajectories
from lyra3d.pipelines.image_to_3d import load_input_image
from lyra3d.pipelines.outputs import save_scene4d
from lyra3d.pipelines.weights import resolve_weights


app = typer.Typer(
    name="lyra3d",
    help="Generative 3D scene reconstruction by video-diffusion self-distillation (Lyra).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
# frames per trajectory of the shipped 3DGS decoder's training data (its model card: other counts decode rougher)
SHIPPED_DECODER_FRAMES = (9, 17)
# frames of the clips the shipped 4D decoder was trained on (its model card: 9-frame clips decode several dB worse)
SHIPPED_DECODER4D_FRAMES = (17,)


def _warn_untrained(model: str, known: tuple[int, ...], trained_on: str, got: int) -> None:
    """One warning line unless ``got`` is in ``known``: the shipped ``model`` was trained on ``trained_on``
    (a format with one ``{}`` for the known counts), this run reads ``got``."""
    if got not in known:
        counts = trained_on.format(" and ".join(str(n) for n in known))
        err.print(f"[bold yellow]warning:[/] the shipped {model} was trained on {counts}; at {got} it decodes a "
                  "rougher scene (see its model card)", highlight=False, soft_wrap=True)


def user_errors(fn):
    """Report LyraError as one line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LyraError as e:
            err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def progress_bar(quiet: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, disable=quiet, transient=False)


def check_output(path: Path, force: bool) -> None:
    """Refuse to overwrite without --force (checked before any work; the folder is made when writing)."""
    if path.exists() and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    if path.is_dir():
        raise InputError(f"{path} is a folder; give a file name")


class _StageBars:
    """One progress row per stage: ``begin(name, total)`` finishes the current row and starts the next."""

    def __init__(self, bar: Progress):
        self.bar, self.task, self.name = bar, None, None

    def finish(self) -> None:
        if self.task is not None:
            total = self.bar.tasks[self.task].total or 1
            self.bar.update(self.task, completed=total)
            self.task = None

    def begin(self, name: str, total: int = 1) -> None:
        self.finish()
        self.task, self.name = self.bar.add_task(name.replace("_", " "), total=total), name

    def set(self, done: int, total: int) -> None:
        if self.task is not None:
            self.bar.update(self.task, completed=done, total=total)


@app.command()
@user_errors
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
    trajectories: Optional[str] = typer.Option(None, help="Comma-separated trajectories (left, right, up, zoom_out, "
                                               "zoom_in, spiral, down, orbit, dolly, static), or N for the first N "
                                               "of Lyra's six (default: all six)."),
    movement_factor: Optional[float] = typer.Option(None, "--movement-factor", help="Scale of the trajectories' "
                                                    "camera motion (default: 1)."),
    steps: Optional[int] = typer.Option(None, help="Sampler steps of the video model (default: 4)."),
    seed: Optional[int] = typer.Option(None, help="Random seed; the same seed gives the same scene (default: 0)."),
    preset: Optional[str] = typer.Option(None, help="Resolution preset (default: default = 320x176, 17 frames per "
                                         "trajectory, the shipped models' native size)."),
    frames: Optional[int] = typer.Option(None, "--frames", help="Frames per trajectory, 1 + 4m (5, 9, 17, ...; "
                                         "default: the preset's); fewer is faster; the shipped decoder was trained "
                                         "on 9 and 17 (5 is rougher). For --video: the frames read, spread evenly "
                                         "over the video (a shorter video has frames repeated; the shipped 4D "
                                         "decoder was trained on 17)."),
    times: Optional[int] = typer.Option(None, "--times", help="--video: the scene at this many times spread over "
                                        "the clip (default: one per distinct frame read); each costs a decoder pass."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="--video: read only the first N frames "
                                             "of the file (then --frames of them are used)."),
    fit: Optional[str] = typer.Option(None, help="An image of another aspect: crop (center) or pad (default: crop)."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    keep_frames: bool = typer.Option(False, "--keep-frames", help="Also write the teacher's frames, "
                                     "teacher/<trajectory>.mp4."),
    flythrough_frames: int = typer.Option(48, "--flythrough-frames", help="Frames of flythrough.mp4 (at least 2)."),
    flythrough_path: str = typer.Option("flythrough", "--flythrough-path", help="Camera path of flythrough.mp4: "
                                        "flythrough (smooth, seeded), orbit, dolly, spiral, left, right, ..."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or summary."),
) -> None:
    """Generate a 3D Gaussian scene from one image or a text prompt (scene.ply, a fly-through video, the input
    view, the cameras and a report: timings, Gaussian count, input-view PSNR), or a 4D scene from a video
    (a PLY per output time, a fly-through while time runs, a bullet-time video, ...)."""
    import time

    if sum(x is not None for x in (image, text, video)) != 1:
        raise InputError('give exactly one of --image PATH, --text "a prompt" or --video PATH')
    if video is None and (times is not None or max_frames is not None):
        raise InputError(f"{'--times' if times is not None else '--max-frames'} is for --video only")
    if out.exists() and not force:
        raise InputError(f"{out} exists; pass --force to overwrite it")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; --out names a folder")
    start = time.perf_counter()
    from lyra3d.core import flythrough as fly
    from lyra3d import pipelines as pl
    from lyra3d.pipelines import video_to_4d as pl4
    from lyra3d.io.prompts import validate_prompt

    prompt = validate_prompt(text) if text is not None else None
    if flythrough_path not in fly.PATHS:
        raise InputError(f"unknown --flythrough-path {flythrough_path!r}; choose from {', '.join(fly.PATHS)}")
    if flythrough_frames < 2:
        raise InputError(f"--flythrough-frames must be at least 2, got {flythrough_frames}")
    overrides = {"trajectories": parse_trajectories(trajectories) if trajectories is not None else None,
                 "movement_factor": movement_factor, "steps": steps, "seed": seed, "preset": preset,
                 "num_frames": frames, "fit": fit, "keep_frames": keep_frames or None, "output_times": times}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    _, settings = resolve_weights(weights)  # a bad weights folder or bad settings fail here, before any work
    base = pl.GenerateConfig.from_dict(settings) if settings else pl.GenerateConfig()
    checked = base.replace(device=device, **overrides)
    picture = info = None
    call = dict(overrides)
    if image is not None:
        picture, info = load_input_image(image, checked.resolution, checked.fit)
    elif video is not None:
        if max_frames is not None and max_frames < 2:
            raise InputError(f"--max-frames must be at least 2, got {max_frames}")
        t0 = time.perf_counter()
        picture, info = pl4.load_input_video(video, checked.resolution, checked.fit, max_frames)
        call["fps"], read_s = info.fps, time.perf_counter() - t0

    cls = pl.TextTo3DPipeline if prompt is not None else pl4.VideoTo4DPipeline if video is not None \
        else pl.ImageTo3DPipeline
    pipe = cls.from_pretrained(weights, device=device)
    if prompt is not None and not quiet:
        unknown = pipe.unknown_words(prompt)
        if unknown:
            err.print(f"[bold yellow]warning:[/] the text-to-image model does not know {', '.join(unknown)}; "
                      "it describes procedural worlds (colours, shapes, floors, skies)", highlight=False,
                      soft_wrap=True)
    names = iter(pipe.stages(**overrides))  # checks the settings against the models
    if video is None and weights is None and not quiet:
        _warn_untrained("3DGS decoder", SHIPPED_DECODER_FRAMES, "{} frames per trajectory", checked.frames)
    if video is not None:
        read = len(pipe.frame_indices(len(picture), str(video), **overrides))  # too short fails before any work
        if weights is None and not quiet:
            _warn_untrained("4D decoder", SHIPPED_DECODER4D_FRAMES, "clips of {} frames", read)
    with progress_bar(quiet) as bar:
        rows = _StageBars(bar)
        rows.begin(next(names))

        def on_stage(done: str) -> None:
            following = next(names, None)
            rows.begin(following) if following is not None else rows.finish()

        if prompt is not None:
            scene = pipe(prompt, progress=on_stage, **call)
        elif video is not None:
            scene = pipe(picture, progress=on_stage, info=info, step_progress=lambda _, done, total:
                         rows.set(done, total), **call)
        else:
            scene = pipe(picture, progress=on_stage, info=info, **call)

        def on_save(what: str, done: int, total: int) -> None:
            if rows.task is None or rows.name != what:
                rows.begin(what, total)
            rows.set(done, total)

        timings = {"load_models": pipe.load_seconds, **scene.timings}
        if video is not None:  # the file was decoded here, before the models loaded
            timings["read_video"] += read_s
        extra = {"command": "generate", "device": str(pipe.device), "environment": environment(),
                 "models": pipe.model_versions(), "timings_s": {k: round(v, 4) for k, v in timings.items()}}
        save = save_scene4d if video is not None else pl.save_scene
        record = save(scene, out, force=force, flythrough_frames=flythrough_frames, flythrough_path=flythrough_path,
                      report=extra, progress=on_save, started=start)
        rows.finish()
    if not quiet:
        count = record["gaussians"]
        what = f"{len(count)} times × {max(count):,} Gaussians" if isinstance(count, list) else f"{count:,} Gaussians"
        err.print(f"wrote {out}: {what}, input-view PSNR {record['input_view_psnr']:.2f} dB, "
                  f"{time.perf_counter() - start:.1f} s", highlight=False, soft_wrap=True)


@app.command()
@user_errors
def render(
    ply: Optional[Path] = typer.Argument(None, help="A 3DGS PLY file to render (or use --world)."),
    world: Optional[int] = typer.Option(None, "--world", "-w", help="Render procedural world SEED instead "
                                        "(ray-cast ground truth; seeds >= 1,000,000 are the evaluation set)."),
    out: Path = typer.Option(Path("flythrough.mp4"), "--out", "-o", help="Output video (.mp4 or .gif)."),
    path: str = typer.Option("orbit", "--path", "-p", help="Camera path: left, right, up, zoom_out, zoom_in, "
                             "spiral, down, orbit, dolly, static, flythrough."),
    frames: int = typer.Option(48, min=1, help="Number of frames."),
    fps: float = typer.Option(24.0, min=1, help="Frames per second."),
    width: int = typer.Option(320, min=8, help="Frame width in pixels."),
    height: int = typer.Option(176, min=8, help="Frame height in pixels."),
    fov: float = typer.Option(50.0, help="Vertical field of view in degrees (when no cameras file is used)."),
    movement: float = typer.Option(1.0, help="Scale of the camera motion (Lyra's movement factor)."),
    cameras: Optional[Path] = typer.Option(None, help="cameras.json whose first camera starts the path "
                                           "(default: cameras.json beside the PLY if present, else identity)."),
    backend: str = typer.Option("auto", help="Rasterizer for PLYs: auto, torch, cpu, gsplat."),
    device: str = typer.Option("cpu", help="Torch device for PLYs: cpu or cuda."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render a 3DGS PLY or a procedural world along a camera path to an MP4/GIF video."""
    from lyra3d.core import flythrough as fly
    from lyra3d.core.gaussians import load_ply
    from lyra3d.io.video import VIDEO_SUFFIXES, write_video

    if (ply is None) == (world is None):
        raise InputError("give either a PLY file or --world SEED (exactly one)")
    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--out must end in {' or '.join(VIDEO_SUFFIXES)}, got {out.name}")
    check_output(out, force)
    config = fly.FlythroughConfig(path=path, num_frames=frames, width=width, height=height, fov_y_degrees=fov,
                                  movement_factor=movement, fps=fps, backend=backend)
    if ply is not None:
        scene = load_ply(ply).validate().to(device)
        if cameras is None and (ply.parent / "cameras.json").is_file():
            cameras = ply.parent / "cameras.json"
        start = fly.default_start_camera(config, cameras)
        depth = fly.gaussians_center_depth(scene, start)
        what = f"{len(scene):,} Gaussians from {ply.name}"
    else:
        from lyra3d.data import worlds

        scene = worlds.make_world(world)
        start = fly.default_start_camera(config, cameras)
        depth = worlds.center_depth(scene)
        what = f"world {world}: {scene.caption}"
    cams = fly.camera_path(start, depth, config)
    with progress_bar(quiet) as bar:
        task = bar.add_task(f"rendering {path}", total=len(cams))
        video = fly.render_frames(scene, cams, backend=backend, on_frames=lambda n: bar.advance(task, n),
                                  renderer=lambda w, c: worlds.render(w, c).rgb)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, out, fps=fps)
    if not quiet:
        err.print(f"wrote {out} ({len(cams)} frames, {width}x{height}) of {what}", highlight=False)


@app.command(name="worlds")
@user_errors
def worlds_cmd(
    out: Path = typer.Argument(..., help="Dataset folder to write (created; resumed if it holds a manifest)."),
    count: int = typer.Option(8, "--count", "-n", min=1, help="Number of worlds."),
    split: str = typer.Option("train", help="train: seeds from 0; eval: seeds from 1,000,000 (held out)."),
    start: int = typer.Option(0, help="Offset of the first seed within the split."),
    frames: int = typer.Option(17, min=1, help="Frames per trajectory."),
    width: int = typer.Option(320, min=8, help="Frame width."),
    height: int = typer.Option(176, min=8, help="Frame height."),
    trajectories: str = typer.Option("left,right,up,zoom_out,zoom_in,spiral",
                                     help="Comma-separated camera trajectories per world."),
    dynamic: bool = typer.Option(False, help="Worlds with moving objects (4D)."),
    workers: int = typer.Option(0, help="Processes (0: all CPU cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Write a dataset of procedural worlds rendered along camera trajectories (frames, depth, cameras)."""
    import os

    from lyra3d.data import datasets, worlds

    if split not in ("train", "eval"):
        raise InputError(f"--split must be train or eval, got {split!r}")
    seeds = worlds.train_seeds(count, offset=start) if split == "train" else worlds.eval_seeds(count, offset=start)
    names = tuple(t.strip() for t in trajectories.split(",") if t.strip())
    written = datasets.write_dataset(out, seeds, trajectories=names, num_frames=frames, width=width,
                                     height=height, workers=workers or os.cpu_count() or 1,
                                     progress=not quiet, dynamic=dynamic)
    if not quiet:
        err.print(f"{out}: {written} new samples, {count} requested", highlight=False)


@app.command()
@user_errors
def export(
    scene: Path = typer.Argument(..., help="A 3DGS PLY (or a generate output folder holding scene.ply)."),
    format: str = typer.Option(None, "--format", "-f", help="ply, splat, usd, usdz or simready (default: from "
                               "--out's suffix). simready writes a folder: one USD stage with the Gaussians, a "
                               "collision mesh, ground and physics for robot simulators, plus mesh.glb/.obj; it "
                               "needs the scene folder's cameras.json. spz is not supported (no well-kept writer "
                               "exists)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: the scene's name "
                                       "with the format's suffix, beside it); for simready a folder (default: "
                                       "SCENE/simready)."),
    up_axis: str = typer.Option("Z", help="USD up axis: Z (Isaac Sim) or Y."),
    scene_scale: Optional[float] = typer.Option(None, "--scene-scale", help="simready: metres per scene unit "
                                                "(default: meta.json's meters_per_unit, else 1, as lyra3d's "
                                                "depth is metric); set it for a scene of arbitrary scale."),
    target_faces: int = typer.Option(50_000, "--target-faces", min=0, help="simready: decimate the collision "
                                     "mesh to at most this many triangles (0: no decimation)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file (or folder)."),
) -> None:
    """Convert Gaussians to another format: PLY, .splat (web viewers), USD/USDZ (Isaac Sim, Omniverse), or a
    sim-ready folder (USD stage with collision mesh and physics, mesh.glb, mesh.obj)."""
    if format is not None and format.lower() == "simready":
        if up_axis.upper() != "Z":
            raise InputError("--format simready writes a Z-up stage (Isaac Sim's convention); drop --up-axis")
        if not scene.exists():
            raise InputError(f"scene not found: {scene}")
        if scene_scale is not None and not (0 < scene_scale < float("inf")):
            raise InputError(f"--scene-scale must be a positive number of metres per scene unit, got {scene_scale}")
        out = out if out is not None else (scene if scene.is_dir() else scene.parent) / "simready"
        if out.exists() and not force:
            raise InputError(f"{out} exists; pass --force to overwrite it")
        from lyra3d.simready.mesh import ExtractionConfig
        from lyra3d.simready.stage import SimReadyConfig, export_simready

        config = SimReadyConfig(extraction=ExtractionConfig(target_faces=target_faces), scene_scale=scene_scale)
        with err.status("sim-ready export") as status:
            result = export_simready(scene, out, config, force=force,
                                     progress=lambda stage: status.update(f"sim-ready export: {stage}"))
        sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in result.files.items())
        err.print(f"wrote {out}: {sizes}; {result.mesh.num_faces:,} faces, {result.scale:g} m per scene unit, "
                  f"{result.seconds['total']:.1f} s", highlight=False, soft_wrap=True)
        if result.drop_test is not None:
            level = "" if result.drop_test.passed else "[bold yellow]warning:[/] "
            err.print(level + result.drop_test.summary(), highlight=False, soft_wrap=True)
        return
    if scene_scale is not None:
        raise InputError("--scene-scale applies to --format simready only")
    from lyra3d.io.export import FORMATS, export_gaussians

    if scene.is_dir():
        scene = scene / "scene.ply"
    if not scene.is_file():
        raise InputError(f"scene not found: {scene}")
    if out is None:
        if format is None:
            raise InputError("give --format or --out (the format comes from its suffix)")
        if format.lower() not in FORMATS:
            raise InputError(f"unknown export format {format!r}; choose from {', '.join(FORMATS + ('simready',))}")
        out = scene.with_suffix("." + format.lower())
    check_output(out, force)
    options = {"up_axis": up_axis.upper()} if (format or out.suffix).lower().lstrip(".").startswith("usd") else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    path = export_gaussians(scene, out, format=format, **options)
    err.print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


@app.command()
@user_errors
def view(
    scene: Path = typer.Argument(..., help="A scene file (.ply, .splat, .usd*) or a generate output folder."),
    port: int = typer.Option(8080, help="Port to serve on (the next free one if busy)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for other machines)."),
) -> None:
    """Open an interactive web viewer (viser): the Gaussians, the camera trajectories, the input image."""
    from lyra3d.viewer.server import serve

    if not scene.exists():
        raise InputError(f"scene not found: {scene}")
    serve(scene, port=port, host=host)


train_app = typer.Typer(help="Train the project's models (GPU recommended; every run is resumable).",
                        no_args_is_help=True)


app.add_typer(train_app, name="train")


def _training_command(name: str, module: str, summary: str, group: typer.Typer | None = None) -> None:
    """Register ``lyra3d train NAME`` (or ``lyra3d NAME`` on ``group``): it hands every argument to
    ``MODULE.main`` (argparse, own --help)."""
    prefix = "lyra3d train" if group is None else "lyra3d"

    @(group or train_app).command(name, help=f"{summary} (options: `{prefix} {name} --help`).",
                       context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                       add_help_option=False)
    @user_errors
    def command(ctx: typer.Context) -> None:
        import importlib

        importlib.import_module(module).main(list(ctx.args))


_training_command("depth", "lyra3d.train.depth", "Train the monocular depth network on procedural worlds")


_training_command("tokenizer", "lyra3d.train.tokenizer", "Train the video tokenizer on procedural-world videos")


_training_command("video-model", "lyra3d.train.video_model",
                  "Train the camera-controlled video diffusion model (needs --tokenizer DIR)")


_training_command("text-to-image", "lyra3d.train.text_to_image",
                  "Train the text-to-image model and measure its prompt following (needs --tokenizer DIR)")


_training_command("decoder", "lyra3d.train.decoder",
                  "Train the 3DGS decoder by self-distillation on an SDG folder (needs --data DIR)")


_training_command("sdg", "lyra3d.data.sdg", "Synthetic data generation: run the teacher over worlds or images, "
                  "write latents, frames, depth and cameras (sharded, resumable)", group=app)


_training_command("eval", "lyra3d.cli.eval", "Evaluate the teacher or the 3DGS decoder on held-out procedural "
                  "worlds against their ray-cast truth; prints a table", group=app)


def main() -> None:
    app()
