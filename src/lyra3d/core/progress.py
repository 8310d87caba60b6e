"""Seconds per stage of a long job (the teacher, SDG, the pipelines), CUDA-synchronised so that GPU work is
charged to the stage that launched it."""

from __future__ import annotations

import time
from typing import Callable

import torch


class StageClock:
    """``clock(stage)`` (or ``clock.mark(stage)``) ends a stage: its seconds add to ``seconds[stage]`` and
    ``progress(stage)`` is told, if given. Fits the ``progress`` callback of :class:`lyra3d.pipelines.teacher.Teacher`."""

    def __init__(self, device: torch.device | str = "cpu", progress: Callable[[str], None] | None = None):
        self.device, self.progress = torch.device(device), progress
        self.start = self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def __call__(self, stage: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now
        if self.progress is not None:
            self.progress(stage)

    mark = __call__

    def total(self) -> dict[str, float]:
        """Every stage's seconds and ``total`` since the clock started."""
        return {**self.seconds, "total": time.perf_counter() - self.start}
