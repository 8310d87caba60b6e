"""What every training run here shares: the config's common fields, parallel world building, a JSON-lines log, and a
resumable run folder (``OUT/model`` = config + safetensors, ``OUT/trainer.pt`` = optimizer, schedule, step)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch

from lyra3d.data import worlds
from lyra3d.errors import InputError
from lyra3d.models.modeling import Pretrained


@dataclass
class RunConfig:
    """Fields every training run has; each script's config adds its own and sets its defaults. The comment of
    a field is its help in ``lyra3d train ... --help`` (an option per field: ``--batch-size`` for
    ``batch_size``)."""

    out: str = "runs/run"  # run folder: OUT/model (config + weights), OUT/trainer.pt; resumed if it holds one
    steps: int = 1000  # optimiser steps (the schedule's length)
    batch_size: int = 8  # samples per step
    lr: float = 1e-3  # peak learning rate (AdamW), after the warm-up, then a cosine to 0
    weight_decay: float = 1e-4  # AdamW weight decay
    warmup: int = 300  # steps of linear learning-rate warm-up
    grad_clip: float = 1.0  # gradient norm clip
    width: int = 320  # frame width in pixels
    height: int = 176  # frame height in pixels
    num_worlds: int = 300  # procedural training worlds (seeds < 1,000,000)
    eval_worlds: int = 8  # held-out worlds evaluated (seeds from 1,000,000)
    eval_every: int = 500  # evaluate every this many steps (and at the end)
    save_every: int = 500  # save OUT/model and OUT/trainer.pt every this many steps (and at the end)
    time_limit_s: float = 0.0  # > 0: save and stop this many seconds after start (a lease's wall clock)
    train_time_s: float = 0.0  # > 0: the schedule ends after this much training time (summed over resumes)
    device: str = "auto"  # the device: cpu, cuda, cuda:N or auto (a CUDA GPU when there is one)
    init_from: str = ""  # a saved model folder to start from (same config), instead of random weights


def initial_model(cls, config, init_from: str, device: torch.device):
    """A fresh model of ``cls`` from ``config``, or the weights saved in ``init_from`` (fine-tuning)."""
    if init_from:
        model = cls.from_pretrained(init_from, device)
        facts = {"trained_frames"}  # facts about earlier training, not the architecture
        have = {k: v for k, v in dataclasses.asdict(model.config).items() if k not in facts}
        if have != {k: v for k, v in dataclasses.asdict(config).items() if k not in facts}:
            raise InputError(f"--init-from {init_from} holds a model with another config: {model.config}")
        return model
    return cls(config).to(device)


def _make_world(seed: int) -> worlds.World:
    torch.set_num_threads(1)
    return worlds.make_world(seed)


def make_worlds(seeds: list[int], workers: int = 0) -> list[worlds.World]:
    """Build worlds (CPU work) in parallel processes."""
    workers = workers or min(len(seeds), os.cpu_count() or 1)
    if workers <= 1 or len(seeds) < 8:
        return [worlds.make_world(s) for s in seeds]
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(workers) as pool:
        return pool.map(_make_world, seeds, chunksize=max(1, len(seeds) // (4 * workers)))


def warmup_cosine(step: int, warmup: int, progress: float) -> float:
    """LR factor: linear warm-up over ``warmup`` steps, then a cosine to 0 as ``progress`` goes 0 → 1."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Run:
    """A run folder: logging, and saving/resuming a model with its AdamW optimizer and schedule.

    The schedule's progress is ``step / steps``, or, with a training-time budget, the larger of that and the
    share of the budget spent (``elapsed_s`` counts across resumes), so a run sized in seconds anneals to 0.

    ``frozen(model)``: the names of parameters that stay fixed (no gradient, not in the optimiser, so
    bit-identical), also after a resume."""

    def __init__(self, out: str | Path, model: Pretrained, lr: float, weight_decay: float, warmup: int, steps: int,
                 train_time_s: float = 0.0, frozen: Callable[[Pretrained], Iterable[str]] | None = None):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model, self.step, self.elapsed_s = model, 0, 0.0
        self._lr, self._wd, self._warmup, self._steps, self._limit = lr, weight_decay, warmup, steps, train_time_s
        self._frozen = frozen
        self.opt = self._optimizer()
        self.set_lr()

    def _optimizer(self) -> torch.optim.AdamW:
        """AdamW over the model's parameters, less the ``frozen`` ones (whose gradients are switched off)."""
        fixed = set(self._frozen(self.model)) if self._frozen is not None else set()
        params = []
        for name, p in self.model.named_parameters():
            if name in fixed:
                p.requires_grad_(False)
            else:
                params.append(p)
        return torch.optim.AdamW(params, lr=self._lr, weight_decay=self._wd)

    @property
    def progress(self) -> float:
        by_time = self.elapsed_s / self._limit if self._limit > 0 else 0.0
        return max(self.step / self._steps, by_time)

    def set_lr(self) -> float:
        lr = self._lr * warmup_cosine(self.step, self._warmup, self.progress)
        for group in self.opt.param_groups:
            group["lr"] = lr
        return lr

    @property
    def state_path(self) -> Path:
        return self.out / "trainer.pt"

    def log(self, record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        with open(self.out / "train_log.jsonl", "a") as f:
            f.write(line + "\n")

    def resume(self, device: torch.device) -> bool:
        """Load ``OUT/model`` and ``OUT/trainer.pt`` if present; True when resumed."""
        if not self.state_path.is_file():
            return False
        device = torch.device(device)
        if device.type == "cpu":
            device = torch.device("cpu")  # accelerate names a process's CPU "cpu:0", which torch.load refuses
        self._check_resume(type(self.model).check_pretrained(self.out / "model"))
        state = torch.load(self.state_path, map_location=device, weights_only=False)
        if state["step"] > self._steps:
            raise InputError(f"{self.out} holds a run at step {state['step']}, past this run's {self._steps} steps; "
                             f"pass --steps above {state['step']} to train on, or another --out")
        self.model = type(self.model).from_pretrained(self.out / "model", device).train()
        self.opt = self._optimizer()
        try:
            self.opt.load_state_dict(state["optimizer"])
        except ValueError:
            raise InputError(f"{self.out} holds a run that trained other parameters (e.g. with or without "
                             "--freeze-encoder); resume with the same settings, or use another --out") from None
        self.step, self.elapsed_s = state["step"], state.get("elapsed_s", 0.0)
        self.set_lr()
        self.log({"resumed_at_step": self.step})
        return True

    def _check_resume(self, saved) -> None:
        """The saved model's architecture (its whole-number, flag and name fields) is this run's, or a one-line
        error naming the fields: a resumed run never mixes settings."""
        ours = dataclasses.asdict(self.model.config)
        differ = sorted(k for k, v in dataclasses.asdict(saved).items()
                        if isinstance(v, (int, bool, str)) and not isinstance(v, float) and ours.get(k) != v)
        if differ:
            what = ", ".join(f"{k} {getattr(saved, k)!r} there, {ours[k]!r} here" for k in differ)
            raise InputError(f"{self.out} holds a run with another model ({what}); use the same settings to "
                             "resume, or another --out")

    def save(self) -> None:
        self.model.save_pretrained(self.out / "model")
        tmp = self.state_path.with_suffix(".tmp")
        torch.save({"optimizer": self.opt.state_dict(), "step": self.step, "elapsed_s": self.elapsed_s}, tmp)
        os.replace(tmp, self.state_path)


def train_loop(run: Run, config, step_fn, eval_fn, start_wall: float, main: bool = True) -> dict[str, float]:
    """The loop every run shares: ``step_fn()`` does one optimiser step on ``run.model`` and returns
    ``(loss, grad_norm)``; this advances the schedule, logs every 50 steps, evaluates with ``eval_fn()``
    (a dict of floats, model in eval mode) every ``config.eval_every`` steps, saves every
    ``config.save_every``, and stops, evaluating and saving, once the schedule is done (steps or training
    time) or ``config.time_limit_s`` has passed since ``start_wall`` (data building included). With several
    processes, only the ``main`` one logs, evaluates and saves."""
    metrics: dict[str, float] = {}
    t_log = t_last = time.time()
    while run.step < config.steps and run.progress < 1:
        loss, gnorm = step_fn()
        run.step += 1
        run.elapsed_s = _agreed_max(run.elapsed_s + time.time() - t_last)  # every process: one schedule
        t_last = time.time()
        lr = run.set_lr()
        step = run.step
        if main and (step % 50 == 0 or step == config.steps):
            run.log({"step": step, "loss": round(float(loss), 5), "grad_norm": round(float(gnorm), 3),
                     "lr": lr, "s_per_step": round((time.time() - t_log) / 50, 4)})
            t_log = time.time()
        out_of_time = run.progress >= 1 or bool(_agreed_max(
            float(config.time_limit_s > 0 and time.time() - start_wall > config.time_limit_s)))
        if main and (step % config.eval_every == 0 or step == config.steps or out_of_time):
            run.model.eval()
            with torch.no_grad():
                metrics = eval_fn()
            run.model.train()
            run.log({"step": step, "eval": {k: round(v, 5) for k, v in metrics.items()}})
        if main and (step % config.save_every == 0 or step == config.steps or out_of_time):
            run.save()
        if out_of_time:
            if main:
                run.log({"stopped": "schedule done" if run.progress >= 1 else "time limit", "step": step})
            break
    return metrics


def _agreed_max(value: float) -> float:
    """The largest ``value`` over all processes of a distributed run (itself when alone): time-based
    schedules and limits must stop every process at the same step, or DDP waits forever."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    backend = dist.get_backend()
    t = torch.tensor([value], dtype=torch.float64,
                     device=f"cuda:{torch.cuda.current_device()}" if backend == "nccl" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def optimizer_step(run: Run, loss: torch.Tensor, grad_clip: float) -> tuple[float, float]:
    """Backward, clip, step: returns ``(loss, grad_norm)`` as floats."""
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), grad_clip)
    run.opt.step()
    return loss.item(), float(gnorm)
