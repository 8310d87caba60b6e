"""Datasets of procedural worlds on disk: a resumable, parallel writer and a reader (docs/design.md §6).

Layout of a dataset folder::

    dataset.json            settings shared by every sample (a resumed run must use the same)
    manifest.jsonl          one JSON line per finished sample: name, seed, caption
    world_0000042/          one folder per world (seed 42)
        frames.npz          rgb   uint8   (V, T, 3, H, W)
        depth.npz           depth float16 or float32 (V, T, 1, H, W), z-depth; SKY_DEPTH on sky
        mask.npz            mask  bool    (V, T, 1, H, W), 1 where a surface was hit
        cameras.json        {trajectory name: Cameras.to_dict()}, in the order of the V axis
        meta.json           seed, caption, labels, trajectory names, frame times, size, lyra3d version

``V`` is the number of trajectories, ``T`` the frames per trajectory. A sample is written into a hidden
temporary folder and renamed into place when complete, so an interrupted run leaves no half sample behind
and a rerun skips the samples already there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

import lyra3d
from lyra3d.core.cameras import Cameras, default_camera
from lyra3d.core.files import check_output, check_settings
from lyra3d.core.progress import Progress, no_progress
from lyra3d.core.trajectories import LYRA_TRAJECTORIES, TRAJECTORY_NAMES, lyra_trajectories
from lyra3d.data.worlds import center_depth, make_world, render, train_seeds
from lyra3d.errors import InputError

FORMAT = "lyra3d-worlds/1"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class DatasetSettings:
    """What every sample of one dataset folder shares (stored as ``dataset.json``)."""

    trajectories: tuple[str, ...] = LYRA_TRAJECTORIES
    num_frames: int = 17
    width: int = 320
    height: int = 176
    dynamic: bool = False
    fps: float = 8.0
    depth_dtype: str = "float16"
    random_movement: bool = True
    movement_factor: float = 1.0

    def to_json(self) -> dict:
        d = asdict(self)
        d["trajectories"] = list(self.trajectories)
        return {"format": FORMAT, **d}


@dataclass(frozen=True)
class Sample:
    """One world read back by :func:`load_sample`.

    Attributes:
        rgb: ``(V, T, 3, H, W)`` float32 in [0, 1].
        depth: ``(V, T, 1, H, W)`` float32 z-depth.
        mask: ``(V, T, 1, H, W)`` float32, 1 on surfaces, 0 on sky.
        cameras: trajectory name → :class:`Cameras` of ``T`` frames, in the order of the ``V`` axis.
        times: ``(T,)`` seconds of each frame (zeros for static worlds).
        meta: the sample's ``meta.json``.
    """

    rgb: Tensor
    depth: Tensor
    mask: Tensor
    cameras: dict[str, Cameras]
    times: Tensor
    meta: dict

    @property
    def caption(self) -> str:
        return self.meta["caption"]

    @property
    def trajectories(self) -> list[str]:
        return list(self.cameras)


def sample_name(seed: int) -> str:
    """Folder name of the world with ``seed``: ``world_0000042``."""
    return f"world_{seed:07d}"


def frame_times(num_frames: int, fps: float) -> Tensor:
    """``(T,)`` times in seconds of frames ``0 .. T-1`` at ``fps``."""
    return torch.arange(num_frames, dtype=torch.float32) / fps


def render_sample(seed: int, settings: DatasetSettings) -> dict:
    """Render one world along the dataset's trajectories (all in memory, numpy arrays).

    Returns a dict with ``rgb (V,T,3,H,W) uint8``, ``depth (V,T,1,H,W)``, ``mask (V,T,1,H,W) bool``,
    ``cameras`` (name → :class:`Cameras`), ``times (T,)`` and ``world``.
    """
    s = settings
    world = make_world(seed, dynamic=s.dynamic)
    cam0 = default_camera(s.width, s.height)
    gen = torch.Generator().manual_seed(seed) if s.random_movement else None
    trajs = lyra_trajectories(cam0, s.num_frames, center_depth(world), s.movement_factor, generator=gen,
                              names=s.trajectories)
    times = frame_times(s.num_frames, s.fps) if s.dynamic else torch.zeros(s.num_frames)
    cams = Cameras.cat([trajs[n] for n in s.trajectories])
    with torch.no_grad():
        out = render(world, cams, times.repeat(len(s.trajectories)))
    v, t = len(s.trajectories), s.num_frames
    shape = (v, t, -1, s.height, s.width)
    rgb = (out.rgb * 255).round_().clamp_(0, 255).to(torch.uint8).reshape(shape).numpy()
    depth = out.depth.reshape(shape).numpy().astype(s.depth_dtype)
    mask = (out.mask > 0).reshape(shape).numpy()
    return {"rgb": rgb, "depth": depth, "mask": mask, "cameras": trajs, "times": times, "world": world}


def _write_sample(out_dir: str, seed: int, settings: DatasetSettings) -> dict:
    """Render and write one sample atomically; returns its manifest entry. Runs in worker processes."""
    t0 = time.time()
    out = Path(out_dir)
    name = sample_name(seed)
    final = out / name
    data = render_sample(seed, settings)
    world = data["world"]
    tmp = out / f"{_TMP_PREFIX}{name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        np.savez_compressed(tmp / "frames.npz", rgb=data["rgb"])
        np.savez_compressed(tmp / "depth.npz", depth=data["depth"])
        np.savez_compressed(tmp / "mask.npz", mask=data["mask"])
        (tmp / "cameras.json").write_text(json.dumps({k: c.to_dict() for k, c in data["cameras"].items()}))
        meta = {
            "name": name, "seed": seed, "split": "eval" if seed >= 1_000_000 else "train",
            "caption": world.caption, "labels": world.labels, "world": world.describe(),
            "trajectories": list(settings.trajectories), "num_frames": settings.num_frames,
            "width": settings.width, "height": settings.height, "times": [round(float(x), 6) for x in data["times"]],
            "center_depth": world.center_depth, "dynamic": settings.dynamic,
            "arrays": {"frames.npz": "rgb uint8 (V,T,3,H,W)", "depth.npz": f"depth {settings.depth_dtype} (V,T,1,H,W)",
                       "mask.npz": "mask bool (V,T,1,H,W)"},
            "lyra3d_version": lyra3d.__version__,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if final.exists():  # written meanwhile by another run: keep that one
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"name": name, "seed": seed, "caption": world.caption, "seconds": round(time.time() - t0, 3)}


def _init_worker() -> None:
    torch.set_num_threads(1)


def read_manifest(out_dir: str | Path) -> list[dict]:
    """The finished samples listed in ``out_dir/manifest.jsonl`` (a torn last line is ignored)."""
    path = Path(out_dir) / "manifest.jsonl"
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "name" in entry:
            entries.append(entry)
    return entries


def _append_manifest(out: Path, entry: dict) -> None:
    with open(out / "manifest.jsonl", "a") as f:
        f.write(json.dumps(entry) + "\n")
        f.flush()


def write_dataset(out_dir: str | Path, seeds: int | Sequence[int], trajectories: Sequence[str] = LYRA_TRAJECTORIES,
                  num_frames: int = 17, width: int = 320, height: int = 176, workers: int | None = None,
                  progress: Progress | None = None, dynamic: bool = False, *, fps: float = 8.0,
                  depth_dtype: str = "float16", random_movement: bool = True,
                  movement_factor: float = 1.0) -> int:
    """Render worlds along camera trajectories and write one sample folder per world (see module doc).

    Args:
        out_dir: dataset folder (created). A folder that already holds samples is resumed: finished samples
            are skipped, so an interrupted run can simply be started again.
        seeds: world seeds, or a count ``n`` for the first ``n`` training seeds.
        trajectories: names from :data:`~lyra3d.core.trajectories.TRAJECTORY_NAMES`, one ``V`` entry each; they
            start at the default camera and face the world's :func:`~lyra3d.data.worlds.center_depth`.
        num_frames: frames ``T`` per trajectory.
        width, height: frame size.
        workers: processes (default: all CPU cores; each uses one torch thread). 1 renders in this process.
        progress: a :class:`~lyra3d.core.progress.Progress`, told ``("worlds", done, total)`` as the worlds
            still to write are written.
        dynamic: moving objects; frame ``i`` of every trajectory shows time ``i / fps``.
        fps: frame rate of dynamic samples.
        depth_dtype: ``"float16"`` (half the size; relative error < 5e-4) or ``"float32"``.
        random_movement: draw each trajectory's movement from Lyra's range with a generator seeded by the
            world seed (as in training); otherwise the middle of each range.
        movement_factor: a factor on every movement (docs/design.md §3).

    Returns:
        The number of samples written by this call (samples already present are not counted).
    """
    out = check_output(out_dir, True, "folder", resume=True)  # an existing dataset folder is resumed
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        if seeds < 0:
            raise InputError(f"number of worlds must be >= 0, got {seeds}")
        seeds = train_seeds(int(seeds))
    try:
        seeds = [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise InputError("seeds must be a count or a list of integer seeds") from None
    bad = [s for s in seeds if not 0 <= s < 2**32]
    if bad:
        raise InputError(f"seeds must be in [0, 2**32), got {bad[0]}")
    seeds = list(dict.fromkeys(seeds))  # unique, in order
    trajectories = tuple(trajectories)
    unknown = [t for t in trajectories if t not in TRAJECTORY_NAMES]
    if unknown or not trajectories:
        raise InputError(f"unknown trajectory {unknown[0]!r}; choose from {', '.join(TRAJECTORY_NAMES)}"
                         if unknown else "give at least one trajectory")
    if len(set(trajectories)) != len(trajectories):
        raise InputError(f"trajectories repeat a name: {', '.join(trajectories)}")
    if num_frames < 1:
        raise InputError(f"num_frames must be >= 1, got {num_frames}")
    if width < 1 or height < 1:
        raise InputError(f"frame size must be positive, got {width}x{height}")
    if depth_dtype not in ("float16", "float32"):
        raise InputError(f"depth_dtype must be float16 or float32, got {depth_dtype!r}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    workers = (os.cpu_count() or 1) if workers is None else int(workers)
    if workers < 1:
        raise InputError(f"workers must be >= 1, got {workers}")
    settings = DatasetSettings(trajectories, int(num_frames), int(width), int(height), bool(dynamic), float(fps),
                               depth_dtype, bool(random_movement), float(movement_factor))

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create dataset folder {out} ({e.strerror})") from None
    check_settings(out / "dataset.json", settings.to_json(), "a dataset")
    for stale in out.glob(f"{_TMP_PREFIX}world_*"):  # left by an interrupted run
        shutil.rmtree(stale, ignore_errors=True)
    listed = {e["name"] for e in read_manifest(out)}
    for folder in sorted(out.glob("world_*")):  # renamed into place but not yet listed when interrupted
        if folder.name not in listed and (folder / "meta.json").is_file():
            meta = json.loads((folder / "meta.json").read_text())
            _append_manifest(out, {"name": folder.name, "seed": meta["seed"], "caption": meta["caption"]})
            listed.add(folder.name)
    todo = [s for s in seeds if not (sample_name(s) in listed and (out / sample_name(s)).is_dir())]
    if not todo:
        return 0

    say = progress or no_progress
    written = 0
    say("worlds", 0, len(todo))
    if workers == 1 or len(todo) == 1:
        for s in todo:
            _append_manifest(out, _write_sample(str(out), s, settings))
            written += 1
            say("worlds", written, len(todo))
    else:
        pool = ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=get_context("spawn"),
                                   initializer=_init_worker)
        try:
            futures = [pool.submit(_write_sample, str(out), s, settings) for s in todo]
            for fut in as_completed(futures):
                _append_manifest(out, fut.result())
                written += 1
                say("worlds", written, len(todo))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return written


def load_sample(path: str | Path) -> Sample:
    """Read one sample folder written by :func:`write_dataset`."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"sample folder not found: {path}")
    missing = [f for f in ("frames.npz", "depth.npz", "mask.npz", "cameras.json", "meta.json")
               if not (path / f).is_file()]
    if missing:
        raise InputError(f"{path} is not a lyra3d world sample (missing {', '.join(missing)}); "
                         "pass a folder written by write_dataset")
    try:
        meta = json.loads((path / "meta.json").read_text())
        cams_json = json.loads((path / "cameras.json").read_text())
        with np.load(path / "frames.npz") as f:
            rgb = torch.from_numpy(f["rgb"]).float().div_(255)
        with np.load(path / "depth.npz") as f:
            depth = torch.from_numpy(f["depth"].astype(np.float32))
        with np.load(path / "mask.npz") as f:
            mask = torch.from_numpy(f["mask"]).float()
    except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read sample {path} ({type(e).__name__}: {e}); rewrite it") from None
    cameras = {name: Cameras.from_dict(d) for name, d in cams_json.items()}
    times = torch.tensor(meta.get("times", [0.0] * rgb.shape[1]), dtype=torch.float32)
    return Sample(rgb=rgb, depth=depth, mask=mask, cameras=cameras, times=times, meta=meta)
