"""``lyra3d export``: Gaussians to another format (:mod:`lyra3d.io.export`) or a sim-ready folder
(:mod:`lyra3d.simready`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lyra3d.cli.app import StageBars, app, err, progress_bar, warning_line
from lyra3d.core.files import check_output, not_found
from lyra3d.errors import InputError

# the sim-ready export's stages on screen (lyra3d.simready.stage.export_simready)
SIMREADY_STAGES = {"render": "rendering depth", "fuse": "fusing depth (TSDF)", "surface": "marching cubes",
                   "ground": "ground plane", "floor": "filling the floor", "decimate": "decimating",
                   "write": "writing USD, glb, obj", "drop_test": "drop test"}


@app.command()
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
        return _simready(scene, out, up_axis, scene_scale, target_faces, force)
    if scene_scale is not None:
        raise InputError("--scene-scale applies to --format simready only")
    from lyra3d.io.export import FORMATS, export_gaussians

    if scene.is_dir():
        scene = scene / "scene.ply"
    if not scene.is_file():
        raise InputError(not_found(scene, "scene"))
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


def _simready(scene: Path, out: Path | None, up_axis: str, scene_scale: float | None, target_faces: int,
              force: bool) -> None:
    """``--format simready``: the scene folder → a sim-ready folder, a progress row per stage."""
    if up_axis.upper() != "Z":
        raise InputError("--format simready writes a Z-up stage (Isaac Sim's convention); drop --up-axis")
    if not scene.exists():
        raise InputError(f"scene not found: {scene}")
    if scene_scale is not None and not (0 < scene_scale < float("inf")):
        raise InputError(f"--scene-scale must be a positive number of metres per scene unit, got {scene_scale}")
    out = out if out is not None else (scene if scene.is_dir() else scene.parent) / "simready"
    check_output(out, force, "folder")
    from lyra3d.simready.mesh import ExtractionConfig
    from lyra3d.simready.stage import SimReadyConfig, export_simready

    config = SimReadyConfig(extraction=ExtractionConfig(target_faces=target_faces), scene_scale=scene_scale)
    with progress_bar(quiet=False) as bar:
        result = export_simready(scene, out, config, force=force, progress=StageBars(bar, labels=SIMREADY_STAGES))
    sizes = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in result.files.items())
    err.print(f"wrote {out}: {sizes}; {result.mesh.num_faces:,} faces, {result.scale:g} m per scene unit, "
              f"{result.seconds['total']:.1f} s", highlight=False, soft_wrap=True)
    if result.drop_test is not None:
        if result.drop_test.passed:
            err.print(result.drop_test.summary(), highlight=False, soft_wrap=True)
        else:
            warning_line(result.drop_test.summary())
