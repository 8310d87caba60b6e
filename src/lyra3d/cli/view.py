"""``lyra3d view``: the interactive web viewer (:mod:`lyra3d.viewer`)."""

from __future__ import annotations

from pathlib import Path

import typer

from lyra3d.cli.app import app
from lyra3d.core.files import not_found
from lyra3d.errors import InputError


@app.command()
def view(
    scene: Path = typer.Argument(..., help="A scene file (.ply, .splat, .usd*) or a generate output folder."),
    port: int = typer.Option(8080, help="Port to serve on (the next free one if busy)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for other machines)."),
    trajectories: bool = typer.Option(False, "--trajectories", help="Show the trajectory cameras' frustums from "
                                      "the start (a toggle in the panel either way)."),
) -> None:
    """Open an interactive web viewer (viser) at the input camera: the Gaussians, the input image, the camera
    trajectories on request."""
    if not scene.exists():
        raise InputError(not_found(scene, "scene"))
    from lyra3d.viewer.server import serve  # torch, viser: after the quick checks
    serve(scene, port=port, host=host, show_trajectories=trajectories)
