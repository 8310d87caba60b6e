"""Many scenes (issue 25): a folder or glob of images (or videos, or a file of prompts) → one scene folder per
input under one output folder, the same files a single ``lyra3d generate`` writes::

    from lyra3d.pipelines.batch import generate_many, list_inputs

    rows = generate_many(list_inputs(images="photos/"), "scenes/", device="cuda", trajectories=("left", "up"))

* Each scene folder is written whole or not at all (:func:`lyra3d.pipelines.outputs.save_scene`); a rerun skips
  the finished ones (their folder exists) and redoes the rest (a killed run's half-written staging folders are
  removed). ``OUT/batch.json`` holds the settings: a rerun with other settings is refused.
* A bad input (unreadable, corrupt, a model error on it) is reported in the summary and skipped; the rest go on.
* Images and prompts run through the pipeline in batches (:meth:`ImageTo3DPipeline.batch`): the batch size
  adapts to free GPU memory (:class:`BatchSize`); on a CPU it is a fixed :data:`CPU_BATCH`. Videos run one by one.
* On a GPU the scene folders are written by a pool of threads (:data:`GPU_WRITE_THREADS`) while the next batch
  generates; at most about two batches of scenes wait to be written.
* ``OUT/summary.jsonl`` at the end: one row per input (input, name, status ``done``/``skipped``/``failed``,
  seconds, input-view PSNR, error).
* ``ray=`` spreads the work over a Ray cluster (:mod:`lyra3d.core.ray_pool`): one worker per GPU (or CPU slot)
  loads the models once; inputs go out in small chunks; a dead worker's chunk is redone elsewhere.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from lyra3d.core.files import atomic_path, check_output, check_settings, remove_stale_staging
from lyra3d.core.progress import Progress, no_progress
from lyra3d.errors import InputError, LyraError

#: Image suffixes a folder of images is read for (as ``lyra3d generate --image`` reads them).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
#: Video suffixes a folder of videos is read for.
VIDEO_SUFFIXES = (".mp4", ".mov", ".webm", ".gif", ".avi", ".mkv", ".m4v")
#: Scenes per batch on a CPU (bigger batches gain little there and hold more memory).
CPU_BATCH = 2
#: The largest batch on a GPU, and the first one (its memory use sets the next ones: :class:`BatchSize`).
MAX_BATCH, FIRST_GPU_BATCH = 64, 4
#: Writer threads on a GPU: scene folders (fly-through render and MP4, PLY, PNG) are written while the next batch
#: generates (:class:`SceneWriter`).
GPU_WRITE_THREADS = 8
#: The summary file of an output folder.
SUMMARY = "summary.jsonl"
#: Test hook: a worker process exits (``os._exit``) while writing the scene of this name, once (the file named
#: by ``LYRA3D_TEST_EXIT_ONCE`` marks that it did).
EXIT_HOOK, EXIT_ONCE = "LYRA3D_TEST_EXIT_AT", "LYRA3D_TEST_EXIT_ONCE"


@dataclass(frozen=True)
class BatchInput:
    """One input: ``kind`` ``image``/``video``/``prompt``, ``source`` its path or prompt, ``name`` its scene
    folder under the output folder."""

    name: str
    source: str
    kind: str


def _files(spec: str | Path, suffixes: tuple[str, ...], what: str) -> list[Path]:
    spec = str(spec)
    if Path(spec).is_dir():
        files = sorted(p for p in Path(spec).iterdir() if p.is_file() and p.suffix.lower() in suffixes)
    elif any(c in spec for c in "*?["):
        files = sorted(Path(p) for p in globlib.glob(spec, recursive=True) if Path(p).is_file())
    else:
        raise InputError(f"{spec} is neither a folder nor a glob pattern; give a folder of {what} or a pattern "
                         f"such as 'photos/*.jpg'")
    if not files:
        raise InputError(f"{spec} holds no {what} ({', '.join(suffixes)})")
    return files


def _names(stems: Sequence[str]) -> list[str]:
    """Scene folder names: each stem made file-safe; a repeated one gets ``_2``, ``_3``, ..."""
    out, seen = [], {}
    for stem in stems:
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "scene"
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def list_inputs(images: str | Path | None = None, videos: str | Path | None = None,
                prompts: str | Path | None = None) -> list[BatchInput]:
    """The inputs of exactly one of: ``images`` (a folder or a glob), ``videos`` (the same), ``prompts`` (a text
    file, one prompt a line; empty lines skipped; scene ``prompt_00001`` is line 1)."""
    if sum(x is not None for x in (images, videos, prompts)) != 1:
        raise InputError("give exactly one of --images DIR|GLOB, --videos DIR|GLOB or --prompts FILE")
    if prompts is not None:
        path = Path(prompts)
        if not path.is_file():
            raise InputError(f"prompts file not found: {path}; give a text file with one prompt a line")
        lines = [(i, line.strip()) for i, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
        if not lines:
            raise InputError(f"{path} holds no prompt; write one prompt a line")
        return [BatchInput(f"prompt_{i:05d}", text, "prompt") for i, text in lines]
    kind = "image" if images is not None else "video"
    files = _files(images if images is not None else videos, IMAGE_SUFFIXES if kind == "image" else VIDEO_SUFFIXES,
                   f"{kind}s")
    return [BatchInput(n, str(p), kind) for n, p in zip(_names([p.stem for p in files]), files)]


def finished(folder: Path) -> bool:
    """A scene folder is finished when it exists with its report (folders appear only whole)."""
    return (folder / "report.json").is_file()


class BatchSize:
    """The batch size: :data:`CPU_BATCH` on a CPU; on a GPU the first batch is :data:`FIRST_GPU_BATCH` scenes,
    then as many as 80 % of the free memory holds at the peak memory per scene measured so far (at most
    ``largest``), halved after an out-of-memory error. ``fixed`` overrides it."""

    def __init__(self, device, fixed: int | None = None, largest: int = MAX_BATCH):
        import torch

        self.device, self.fixed, self.largest = torch.device(device), fixed, largest
        self.size = fixed or (CPU_BATCH if self.device.type != "cuda" else FIRST_GPU_BATCH)
        self.per_scene = 0.0

    def start(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)

    def measured(self, scenes: int) -> None:
        """After a batch of ``scenes``: the next size from its peak memory."""
        import torch

        if self.device.type != "cuda" or self.fixed or scenes < 1:
            return
        peak = torch.cuda.max_memory_allocated(self.device) - self._base
        self.per_scene = max(self.per_scene, peak / scenes)
        free, _ = torch.cuda.mem_get_info(self.device)
        free += torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device)
        self.size = max(1, min(self.largest, int(0.8 * free / max(self.per_scene, 1.0))))

    def out_of_memory(self) -> None:
        import torch

        torch.cuda.empty_cache()
        self.size = max(1, self.size // 2)
        self.fixed = None if self.fixed is None else self.size


def _exit_hook(name: str):
    """The test hook (:data:`EXIT_HOOK`): a progress callback that ends this process while the scene ``name``
    is half written, the first time only."""
    if os.environ.get(EXIT_HOOK) != name:
        return None
    flag = Path(os.environ.get(EXIT_ONCE, ""))
    if not flag.name or flag.exists():
        return None

    def die(stage: str, done: int, total: int) -> None:
        if stage == "write" and 0 < done < total:
            flag.write_text(str(os.getpid()))
            os._exit(3)

    return die


@dataclass
class SceneWriter:
    """Loads the pipeline once (on first use) and turns chunks of inputs into scene folders under ``out``: what
    one process, or one Ray worker, runs. Calling it with a list of :class:`BatchInput` returns their summary
    rows. ``overrides``: :class:`GenerateConfig` fields; ``batch_size``: fixed, else :class:`BatchSize`."""

    out: str
    weights: str | None = None
    device: str = "cpu"
    overrides: dict = field(default_factory=dict)
    batch_size: int | None = None
    flythrough_frames: int = 48
    flythrough_path: str = "flythrough"
    threads: int = 0
    presets: tuple = ()  # presets registered in the driver, registered again in a Ray worker
    depth: str | None = None  # a depth model folder replacing the weights' depth part (``--depth``)
    text_to_image: str | None = None  # prompts: a text-to-image folder (``--text-to-image``)
    write_threads: int = 0  # scenes written by this many threads while the next batch generates (0: in line)

    def __post_init__(self):
        self._pipes: dict = {}
        self._size = None
        if self.presets:
            from lyra3d.pipelines.config import register_preset

            for preset in self.presets:
                register_preset(preset, replace=True)

    def __getstate__(self):  # pickled to Ray workers without loaded models
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__post_init__()

    def pipe(self, kind: str):
        if kind not in self._pipes:
            import torch

            from lyra3d import pipelines as pl

            if self.threads:
                torch.set_num_threads(self.threads)
            if torch.device(self.device).type == "cuda":  # as SDG: fixed shapes, the fastest kernels found once
                torch.set_float32_matmul_precision("high")  # TF32 matmuls where fp32 remains
                torch.backends.cudnn.benchmark = True
            cls = {"image": pl.ImageTo3DPipeline, "prompt": pl.TextTo3DPipeline, "video": pl.VideoTo4DPipeline}[kind]
            folders = {"depth": self.depth, **({"text_to_image": self.text_to_image} if kind == "prompt" else {})}
            self._pipes[kind] = cls.from_pretrained(self.weights, device=self.device, **folders)
            self._extra = None
        return self._pipes[kind]

    def _report(self, pipe) -> dict:
        from lyra3d.core.device import environment

        if getattr(self, "_extra", None) is None:
            self._extra = {"command": "generate", "device": str(pipe.device), "environment": environment(),
                           "models": pipe.model_versions()}
        return self._extra

    def __call__(self, items: Sequence[BatchInput], progress: Progress | None = None) -> list[dict]:
        say = progress or no_progress
        rows = []
        todo = []
        for item in items:
            if finished(Path(self.out) / item.name):
                rows.append(_row(item, "skipped", psnr=_psnr_of(Path(self.out) / item.name)))
                say("scenes", 1, 1)
            else:
                todo.append(item)
        if not todo:
            return rows
        if self._size is None:
            self._size = BatchSize(self.device, self.batch_size)
        kind = todo[0].kind
        pipe = self.pipe(kind)
        pending: list[Future] = []  # scenes being written by the pool, oldest first
        self._pool = ThreadPoolExecutor(self.write_threads) if self.write_threads > 0 else None

        def collect(keep: int) -> None:  # the finished writes, and the oldest until at most ``keep`` are pending
            while pending and (pending[0].done() or len(pending) > keep):
                rows.append(pending.pop(0).result())
                say("scenes", 1, 1)

        try:
            i = 0
            while i < len(todo):
                chunk = todo[i:i + (1 if kind == "video" else self._size.size)]
                try:
                    got = self._run(pipe, chunk)
                except _OutOfMemory:
                    if len(chunk) == 1:
                        got = [_row(chunk[0], "failed", error="out of GPU memory for one scene")]
                    else:
                        self._size.out_of_memory()
                        continue
                for row in got:
                    if isinstance(row, Future):
                        pending.append(row)
                    else:
                        rows.append(row)
                        say("scenes", 1, 1)
                # at most about two batches of scenes wait to be written (their Gaussians hold device memory)
                collect(max(2 * len(chunk), self.write_threads))
                i += len(chunk)
            collect(0)
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        return rows

    def _run(self, pipe, chunk: list[BatchInput]) -> list:
        """Load, generate (one batch; one by one if the batch fails) and write the scenes of ``chunk``: their rows,
        or, with a writer pool, the futures of the rows of the scenes being written."""
        import torch

        rows, ready, loads = {}, [], {}
        cfg = _config(self.weights, self.overrides)
        for item in chunk:
            t0 = time.perf_counter()
            try:
                loaded = _load(item, cfg)
            except Exception as e:  # noqa: BLE001 (any bad input is reported, never stops the batch)
                rows[item.name] = _row(item, "failed", time.perf_counter() - t0, error=_say(e))
                continue
            ready.append((item, loaded))
            loads[item.name] = time.perf_counter() - t0
        scenes: dict = {}
        if ready:
            self._size.start()
            t0 = time.perf_counter()
            try:
                made = self._generate(pipe, ready)
                share = (time.perf_counter() - t0) / len(ready)
                scenes = {item.name: (scene, share) for (item, _), scene in zip(ready, made)}
                self._size.measured(len(ready))
            except torch.cuda.OutOfMemoryError:
                raise _OutOfMemory() from None
            except Exception:  # noqa: BLE001 (find the bad input: one by one)
                for item, loaded in ready:
                    t1 = time.perf_counter()
                    try:
                        scenes[item.name] = (self._generate(pipe, [(item, loaded)])[0], time.perf_counter() - t1)
                    except torch.cuda.OutOfMemoryError:
                        raise _OutOfMemory() from None
                    except Exception as e:  # noqa: BLE001
                        rows[item.name] = _row(item, "failed", time.perf_counter() - t1, error=_say(e))
        pool = getattr(self, "_pool", None)
        for item, _ in ready:
            if item.name not in scenes:
                continue
            scene, seconds = scenes[item.name]
            args = (pipe, item, scene, loads[item.name] + seconds)
            rows[item.name] = pool.submit(self._finish, *args) if pool is not None else self._finish(*args)
        return [rows[item.name] for item in chunk]

    def _finish(self, pipe, item: BatchInput, scene, seconds: float) -> dict:
        """Write one generated scene; its summary row (``seconds``: what it took before writing)."""
        t1 = time.perf_counter()
        try:
            self._save(pipe, item, scene)
        except Exception as e:  # noqa: BLE001
            return _row(item, "failed", seconds, error=_say(e))
        total = seconds + time.perf_counter() - t1
        psnr = scene.input_view_psnr if item.kind != "video" else float(sum(scene.input_view_psnrs) /
                                                                        len(scene.input_view_psnrs))
        return _row(item, "done", total, psnr=psnr)

    def _generate(self, pipe, ready: list) -> list:
        over = {k: v for k, v in self.overrides.items() if k != "seed"}
        seed = self.overrides.get("seed")
        if ready[0][0].kind == "image":
            return pipe.batch([x for _, (x, _) in ready], seed, infos=[info for _, (_, info) in ready], **over)
        if ready[0][0].kind == "prompt":
            return pipe.batch([x for _, (x, _) in ready], seed, **over)
        (_, (video, info)), = ready
        return [pipe(video, seed, info=info, fps=info.fps, **over)]

    def _save(self, pipe, item: BatchInput, scene) -> None:
        from lyra3d.pipelines.outputs import save_scene, save_scene4d

        save = save_scene4d if item.kind == "video" else save_scene
        extra = {**self._report(pipe), "batch": {"input": item.source}}
        save(scene, Path(self.out) / item.name, flythrough_frames=self.flythrough_frames,
             flythrough_path=self.flythrough_path, report=extra, progress=_exit_hook(item.name))


class _OutOfMemory(Exception):
    pass


def _config(weights, overrides: dict):
    from lyra3d.pipelines.config import GenerateConfig
    from lyra3d.pipelines.weights import resolve_weights

    _, settings = resolve_weights(weights)
    base = GenerateConfig.from_dict(settings) if settings else GenerateConfig()
    return base.replace(**overrides)


def _load(item: BatchInput, cfg):
    """An input ready for its pipeline: ``(tensor or prompt, info)``."""
    if item.kind == "image":
        from lyra3d.pipelines.image_to_3d import load_input_image

        return load_input_image(item.source, cfg.resolution, cfg.fit)
    if item.kind == "video":
        from lyra3d.pipelines.video_to_4d import load_input_video

        return load_input_video(item.source, cfg.resolution, cfg.fit)
    from lyra3d.io.prompts import validate_prompt

    return validate_prompt(item.source), None


def _say(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return text if isinstance(e, LyraError) else f"{type(e).__name__}: {text}"


def _row(item: BatchInput, status: str, seconds: float = 0.0, psnr: float | None = None, error: str = "") -> dict:
    return {"input": item.source, "name": item.name, "status": status, "seconds": round(seconds, 4),
            "input_view_psnr": None if psnr is None else round(float(psnr), 4), "error": error}


def _psnr_of(folder: Path) -> float | None:
    try:
        value = json.loads((folder / "report.json").read_text())["input_view_psnr"]
    except (OSError, ValueError, KeyError):
        return None
    return float(value if not isinstance(value, list) else sum(value) / len(value))


def batch_settings(kind: str, weights, overrides: dict, flythrough_frames: int, flythrough_path: str,
                   folders: dict | None = None) -> dict:
    """What a resumed run must share with the first (``OUT/batch.json``): the settings of every scene and the
    model ``folders`` given beside the weights (``depth``, ``text_to_image``; recorded when given)."""
    cfg = _config(weights, overrides).to_dict()
    cfg.pop("device", None)
    given = {k: str(Path(v).expanduser().resolve()) for k, v in (folders or {}).items() if v is not None}
    settings = {"kind": kind, "config": cfg, "weights": None if weights is None else str(Path(weights).resolve()),
                "flythrough": {"frames": flythrough_frames, "path": flythrough_path}}
    return {**settings, "models": given} if given else settings


def generate_many(inputs: Sequence[BatchInput], out: str | Path, *, weights: str | Path | None = None,
                  device: str = "cpu", batch_size: int | None = None, flythrough_frames: int = 48,
                  flythrough_path: str = "flythrough", progress: Progress | None = None, ray: str | None = None,
                  ray_workers: int | None = None, chunk: int | None = None, depth: str | Path | None = None,
                  text_to_image: str | Path | None = None, write_threads: int | None = None,
                  **overrides) -> list[dict]:
    """Generate a scene folder per input under ``out`` (see the module docstring); returns the summary rows
    (also written to ``out/summary.jsonl``).

    Args:
        inputs: from :func:`list_inputs` (one kind).
        weights, device, **overrides: as :meth:`ImageTo3DPipeline.from_pretrained` and a single call
            (``seed``: every scene's seed, as ``lyra3d generate --seed``).
        depth, text_to_image: model folders replacing the weights' parts, as ``lyra3d generate --depth`` and
            ``--text-to-image`` (the latter for prompts only).
        batch_size: scenes per batch (default: adaptive, :class:`BatchSize`).
        progress: told ``("scenes", done, total)`` as each input is written, skipped or fails.
        ray: run on a Ray cluster at this address (``"local"``: a local cluster); ``ray_workers``: workers
            (default one per GPU, or per CPU slot for ``device="cpu"``); ``chunk``: inputs per Ray task
            (default 16 on GPUs, 1 on CPUs).
        write_threads: scene folders are written by this many threads while the next batch generates (default
            :data:`GPU_WRITE_THREADS` on a GPU, where writing one scene after another would leave the GPU
            waiting; 0 on a CPU: in line)."""
    if not inputs:
        raise InputError("no inputs")
    if len({i.kind for i in inputs}) != 1:
        raise InputError("inputs of one kind only: images, videos or prompts")
    out = check_output(out, force=True, kind="folder", resume=True)
    if overrides.get("device") is not None:
        raise InputError("give the device as device=, not in the settings")
    if text_to_image is not None and inputs[0].kind != "prompt":
        raise InputError("--text-to-image is for --prompts (it makes each input image from its prompt)")
    folders = {"depth": depth, "text_to_image": text_to_image}
    settings = batch_settings(inputs[0].kind, weights, overrides, flythrough_frames, flythrough_path, folders)
    out.mkdir(parents=True, exist_ok=True)
    check_settings(out / "batch.json", settings, "scenes")
    for item in inputs:
        remove_stale_staging(out / item.name)  # a killed run's half-written folders
    say = progress or no_progress
    total, done = len(inputs), 0
    say("scenes", 0, total)
    from lyra3d.pipelines.config import PRESETS

    name = overrides.get("preset")
    writer = SceneWriter(str(out), None if weights is None else str(weights), device, dict(overrides), batch_size,
                         flythrough_frames, flythrough_path,
                         presets=(PRESETS[name],) if name is not None and name != "default" else (),
                         **{k: None if v is None else str(v) for k, v in folders.items()},
                         write_threads=(GPU_WRITE_THREADS if not str(device).startswith("cpu") else 0)
                         if write_threads is None else int(write_threads))
    rows: dict[str, dict] = {}

    def count(stage: str, d: int, t: int) -> None:
        nonlocal done
        done += 1
        say("scenes", done, total)

    if ray is None:
        for row in writer(list(inputs), count):
            rows[row["name"]] = row
    else:
        from lyra3d.core.ray_pool import ray_map

        gpu = not str(device).startswith("cpu")
        step = chunk or (16 if gpu else 1)
        todo = [i for i in inputs if not finished(out / i.name)]
        for item in inputs:
            if item not in todo:
                rows[item.name] = _row(item, "skipped", psnr=_psnr_of(out / item.name))
                count("scenes", 1, 1)
        chunks = [todo[i:i + step] for i in range(0, len(todo), step)]

        def got(task, result) -> None:
            for row in result:
                rows[row["name"]] = row
                count("scenes", 1, 1)

        def lost(task, reason: str) -> None:
            for item in task:
                rows[item.name] = _row(item, "failed", error=reason)
                count("scenes", 1, 1)

        writer.threads = 1 if not gpu else 0
        ray_map(writer, chunks, address=ray, gpu=gpu, workers=ray_workers, on_result=got, on_lost=lost)
        ended = time.time()  # every worker has ended: what a dead one left half written goes
        for item in inputs:
            remove_stale_staging(out / item.name, before=ended)
    ordered = [rows[i.name] for i in inputs if i.name in rows]
    with atomic_path(out / SUMMARY) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in ordered))
    return ordered
