"""Rectified-flow sampling: Euler steps from noise (flow time s = 1) to data (s = 0) with classifier-free
guidance. One sampler for every flow model here (the video model, the text-to-image model)."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import Tensor

from lyra3d.errors import InputError

#: ``velocity(x (N, ...), s (N,), drop)`` → ``v (N, ...)``. ``drop`` is ``None`` when every row is
#: conditioned, else an ``(N,)`` bool mask of the rows whose condition is dropped (the unconditional half).
Velocity = Callable[[Tensor, Tensor, Optional[Tensor]], Tensor]


def euler_sample(noise: Tensor, velocity: Velocity, steps: int, guidance: float = 1.0,
                 pin: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Integrate ``dx/ds = v`` from ``noise`` at s = 1 to s = 0 in ``steps`` equal Euler steps.

    With ``guidance != 1`` each step runs the model once on ``[x; x]`` with ``drop = [False; True]`` and
    uses ``v = v_u + guidance · (v_c − v_u)``; with ``guidance == 1`` (half the cost) only the conditioned
    half runs. ``pin(x)`` (e.g. "frame 0 is the input's latent") is applied before every step and to the
    result. Deterministic: the randomness is all in ``noise``."""
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}")
    x, b = noise, noise.shape[0]
    grid = torch.linspace(1, 0, steps + 1, device=x.device)
    drop = None
    if guidance != 1.0:
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
    for i in range(steps):
        if pin is not None:
            x = pin(x)
        s = grid[i].expand(b)
        if drop is None:
            v = velocity(x, s, None)
        else:
            vc, vu = velocity(torch.cat([x, x]), torch.cat([s, s]), drop).chunk(2)
            v = vu + guidance * (vc - vu)
        x = x + (grid[i + 1] - grid[i]) * v
    return pin(x) if pin is not None else x
