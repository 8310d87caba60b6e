"""``lyra3d render``: a 3DGS PLY or a procedural world along a camera path → an MP4/GIF video."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lyra3d.cli.app import StageBars, app, err, progress_bar
from lyra3d.core import limits as L
from lyra3d.core.files import check_output
from lyra3d.errors import InputError


@app.command()
def render(
    ply: Optional[Path] = typer.Argument(None, help="A 3DGS PLY file to render (or use --world)."),
    world: Optional[int] = typer.Option(None, "--world", "-w", help="Render procedural world SEED instead "
                                        "(ray-cast ground truth; seeds >= 1,000,000 are the evaluation set)."),
    out: Path = typer.Option(Path("flythrough.mp4"), "--out", "-o", help="Output video (.mp4 or .gif)."),
    path: str = typer.Option("orbit", "--path", "-p", help="Camera path: left, right, up, zoom_out, zoom_in, "
                             "spiral, down, orbit, dolly, static, flythrough."),
    frames: int = typer.Option(48, min=1, max=L.MAX_VIDEO_FRAMES, help="Number of frames."),
    fps: float = typer.Option(24.0, min=1, max=L.MAX_FPS, help="Frames per second."),
    width: int = typer.Option(320, min=8, max=L.MAX_SIDE, help="Frame width in pixels."),
    height: int = typer.Option(176, min=8, max=L.MAX_SIDE, help="Frame height in pixels."),
    fov: float = typer.Option(50.0, min=1.0, max=179.0, help="Vertical field of view in degrees (when no cameras file is used)."),
    movement: float = typer.Option(1.0, min=0.001, max=L.MAX_MOVEMENT_FACTOR, help="Scale of the camera motion (Lyra's movement factor)."),
    cameras: Optional[Path] = typer.Option(None, help="cameras.json whose first camera starts the path "
                                           "(default: cameras.json beside the PLY if present, else identity)."),
    backend: str = typer.Option("auto", help="Rasterizer for PLYs: auto, torch, cpu, gsplat."),
    device: str = typer.Option("cpu", help="Torch device for PLYs: cpu or cuda."),
    force: bool = typer.Option(False, "--force", "-f", help="Overwrite an existing output file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Render a 3DGS PLY or a procedural world along a camera path to an MP4/GIF video."""
    if (ply is None) == (world is None):
        raise InputError("give either a PLY file or --world SEED (exactly one)")
    check_output(out, force)  # before torch loads: a refusal is quick

    from lyra3d.core import flythrough as fly
    from lyra3d.core.gaussians import load_ply
    from lyra3d.io.video import VIDEO_SUFFIXES, write_video

    if out.suffix.lower() not in VIDEO_SUFFIXES:
        raise InputError(f"--out must end in {' or '.join(VIDEO_SUFFIXES)}, got {out.name}")
    config = fly.FlythroughConfig(path=path, num_frames=frames, width=width, height=height, fov_y_degrees=fov,
                                  movement_factor=movement, fps=fps, backend=backend)
    if ply is not None:
        from lyra3d.core.device import check_device

        scene = load_ply(ply).validate().to(check_device(device))
        if cameras is None and (ply.parent / "cameras.json").is_file():
            cameras = ply.parent / "cameras.json"
        start = fly.default_start_camera(config, cameras)
        depth = fly.gaussians_center_depth(scene, start)
        what, renderer = f"{len(scene):,} Gaussians from {ply.name}", None
    else:
        from lyra3d.data import worlds

        scene = worlds.make_world(world)
        start = fly.default_start_camera(config, cameras)
        depth = worlds.center_depth(scene)
        what = f"world {world}: {scene.caption}"

        def renderer(w, c):
            return worlds.render(w, c).rgb
    cams = fly.camera_path(start, depth, config)
    with progress_bar(quiet) as bar:
        rows = StageBars(bar, ["render"], labels={"render": f"rendering {path}"})
        video = fly.render_frames(scene, cams, backend=backend, progress=rows, renderer=renderer)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(video, out, fps=fps)
    if not quiet:
        err.print(f"wrote {out} ({len(cams)} frames, {width}x{height}) of {what}", highlight=False)
