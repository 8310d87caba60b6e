"""``lyra3d worlds``: a dataset of procedural worlds on disk (:func:`lyra3d.data.datasets.write_dataset`)."""

from __future__ import annotations

from pathlib import Path

import typer

from lyra3d.cli.app import StageBars, app, err, progress_bar
from lyra3d.core import limits as L
from lyra3d.errors import InputError


@app.command(name="worlds")
def worlds_cmd(
    out: Path = typer.Argument(..., help="Dataset folder to write (created; resumed if it holds a manifest)."),
    count: int = typer.Option(8, "--count", "-n", min=1, max=L.MAX_WORLDS, help="Number of worlds."),
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
    with progress_bar(quiet, remaining=True) as bar:
        written = datasets.write_dataset(out, seeds, trajectories=names, num_frames=frames, width=width,
                                         height=height, workers=workers or os.cpu_count() or 1, dynamic=dynamic,
                                         progress=StageBars(bar, labels={"worlds": f"worlds → {out.name}"}))
    if not quiet:
        err.print(f"{out}: {written} new samples, {count} requested", highlight=False)
