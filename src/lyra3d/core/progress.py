"""How long work reports its progress (:class:`Progress`, the one callback signature of the package), and
:class:`StageClock`, the seconds per stage of a long job (the teacher, SDG, the pipelines), CUDA-synchronised
so that GPU work is charged to the stage that launched it."""

from __future__ import annotations

import time
from typing import Protocol

import torch


class Progress(Protocol):
    """``progress(stage, done, total)``: what every long function here accepts as ``progress=``.

    ``stage`` names a part of the work (``"depth"``, ``"flythrough"``, ``"samples"``...). A stage reports
    ``done == total`` once, when it ends (a stage without steps: ``(stage, 1, 1)``); a stage with steps (frames
    rendered, samples written, output times decoded) also reports its counts on the way, ``0 <= done < total``
    (``done == 0``: it has started). Stages report in the order they run. A plain function fits::

        def show(stage: str, done: int, total: int) -> None:
            print(f"{stage}: {done}/{total}")

        pipe(image, progress=show)
    """

    def __call__(self, stage: str, done: int, total: int) -> None: ...


def no_progress(stage: str, done: int, total: int) -> None:
    """A :class:`Progress` that ignores everything (the default of ``progress=None``)."""


class StageClock:
    """A :class:`Progress` that times stages: ``clock(stage)`` (or ``clock.mark(stage)``) ends a stage, its
    seconds since the previous end add to ``seconds[stage]``; ``clock(stage, done, total)`` with ``done < total``
    is a step on the way (not timed). Every call is passed on to ``progress``, if given (``(stage, 1, 1)`` for a
    plain ``clock(stage)``), so a clock can be handed on as the ``progress`` of a part of the job."""

    def __init__(self, device: torch.device | str = "cpu", progress: Progress | None = None):
        self.device, self.progress = torch.device(device), progress or no_progress
        self.start = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str, done: int = 1, total: int = 1) -> None:
        if done >= total:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            now = time.perf_counter()
            self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
            self.last = now
        self.progress(stage, done, total)

    mark = __call__

    def total(self) -> dict[str, float]:
        """Every stage's seconds and ``total`` since the clock started."""
        return {**self.seconds, "total": time.perf_counter() - self.start}
