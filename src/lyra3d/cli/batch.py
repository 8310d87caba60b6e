"""What ``lyra3d generate --images|--videos|--prompts`` and ``lyra3d sdg --ray`` add to those commands: many
inputs at once (:func:`lyra3d.pipelines.batch.generate_many`), the ``--ray [ADDRESS]`` option, and a progress
row with scenes per second and the time left."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from rich.progress import (BarColumn, MofNCompleteColumn, ProgressColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.progress import Progress as Bar
from rich.text import Text

from lyra3d.cli.app import OneLineCommand, err
from lyra3d.errors import InputError

#: ``--ray`` alone means a local cluster.
LOCAL = "local"


class RayCommand(OneLineCommand):
    """A command whose ``--ray`` takes an optional value: ``--ray`` alone is ``--ray local`` (click's parser
    wants a value for an option that is not a flag, and typer does not pass click's ``flag_value``)."""

    def make_context(self, info_name, args, *rest, **kwargs):
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--ray" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, LOCAL)
                break
        return super().make_context(info_name, args, *rest, **kwargs)


class RateColumn(ProgressColumn):
    """Scenes per second of a row (rich's running estimate)."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:.2f} scenes/s")


def run_batch(*, images: Optional[str], videos: Optional[str], prompts: Optional[Path], out: Path,
              weights: Optional[Path], device: str, batch_size: Optional[int], ray: Optional[str],
              ray_workers: Optional[int], flythrough_frames: int, flythrough_path: str, quiet: bool,
              overrides: dict, folders: dict | None = None) -> None:
    """The batch form of ``lyra3d generate``: a scene folder per input under ``out``, ``out/summary.jsonl``;
    prints one line per failed input and a closing count. ``folders``: ``depth``/``text_to_image`` model folders
    (``--depth``, ``--text-to-image``)."""
    from lyra3d.pipelines.batch import SUMMARY, generate_many, list_inputs

    inputs = list_inputs(images=images, videos=videos, prompts=prompts)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
               TimeElapsedColumn(), TimeRemainingColumn()]
    bar = Bar(*columns, console=err, disable=quiet, transient=False)
    task = None

    def show(stage: str, done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(f"scenes → {out.name}", total=max(total, 1))
        bar.update(task, completed=done, total=max(total, 1))

    try:
        rows = generate_many(inputs, out, weights=weights, device=device, batch_size=batch_size,
                             flythrough_frames=flythrough_frames, flythrough_path=flythrough_path, progress=show,
                             ray=ray, ray_workers=ray_workers, **(folders or {}), **overrides)
    finally:
        bar.stop()
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "skipped", "failed")}
    if not quiet:
        for r in rows:
            if r["status"] == "failed":
                err.print(f"failed: {r['input']}: {r['error']}", highlight=False, soft_wrap=True, markup=False)
        err.print(f"{counts['done']} written, {counts['skipped']} already there, {counts['failed']} failed; "
                  f"summary in {out / SUMMARY}", highlight=False, soft_wrap=True)
    print(json.dumps({**counts, "out": str(out)}))


def check_batch_options(image, text, video, images, videos, prompts) -> bool:
    """Whether this is a batch run; one input option only (``--image`` and ``--images`` never mix)."""
    given = [name for name, v in (("--image", image), ("--text", text), ("--video", video), ("--images", images),
                                  ("--videos", videos), ("--prompts", prompts)) if v is not None]
    many = [name for name in given if name in ("--images", "--videos", "--prompts")]
    if len(given) > 1 and many:  # one-scene options alone: generate's own check says which to give
        raise InputError(f"give one input option, got {' and '.join(given)}: --image/--text/--video for one "
                         "scene, --images/--videos/--prompts for many")
    return bool(given) and given[0] in ("--images", "--videos", "--prompts")
