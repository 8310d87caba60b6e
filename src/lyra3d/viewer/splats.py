"""Gaussians as viser's splat renderer takes them, with faint Gaussians made visible to it.

viser's splat shader keeps 8 bits of opacity (rounded down) and discards every fragment whose alpha is under
0.01, so a Gaussian of opacity below about 0.02 barely shows there, and a scene built of many such layers
(lyra3d's decoder output is: half its Gaussians are under 0.013) comes out as a pale haze over white. The
viewer therefore sends those Gaussians by stochastic transparency: each one of opacity ``a`` under
``floor`` is kept with probability ``log(1 - a) / log(1 - floor)`` at opacity ``floor`` (the expected
transmittance through it is unchanged), the others dropped; Gaussians at or above ``floor`` are sent as
they are. On a generated scene (``floor = 0.1``) that keeps 51k of 180k Gaussians and renders, in
:func:`~lyra3d.core.render.rasterize`, within 41.8 dB of the whole scene at its input camera.

viser draws the splats in the order they were sent until its sorter (a web worker) has sorted them for the
camera, which takes seconds to minutes on a slow machine; in the wrong order the far sky is blended over the
objects. The viewer therefore sends them sorted back to front for its first view, so the first frame is
right before the sorter answers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lyra3d.core.gaussians import Gaussians, quat_to_rotmat

#: The opacity faint Gaussians are sent at (see the module notes).
OPACITY_FLOOR = 0.1


def thin_faint(g: Gaussians, floor: float = OPACITY_FLOOR, seed: int = 0) -> tuple[Gaussians, torch.Tensor]:
    """The Gaussians of opacity under ``floor`` thinned out and raised to ``floor`` (module notes), and the
    new opacities ``(M,)``; the same ``seed`` keeps the same ones."""
    a = g.alpha.detach().cpu().double()
    if not 0.0 < floor < 1.0:
        return g, a.float()
    p = (torch.log1p(-a.clamp(max=floor)) / math.log1p(-floor)).clamp(0.0, 1.0)
    draw = torch.rand(len(a), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    keep = (a >= floor) | (draw < p)
    return g[keep], torch.where(a >= floor, a, torch.full_like(a, floor))[keep].float()


def splat_arrays(g: Gaussians, floor: float = OPACITY_FLOOR, seed: int = 0,
                 view_from: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """``centers, covariances (Σ = R S² Rᵀ), rgbs, opacities`` as viser's ``add_gaussian_splats`` takes them,
    faint Gaussians thinned (:func:`thin_faint`; ``floor=0`` sends every Gaussian as it is) and, given
    ``view_from = (position, forward)``, ordered back to front along ``forward`` (module notes)."""
    g = g.detach().to("cpu", torch.float32)
    g, alpha = thin_faint(g, floor, seed)
    if view_from is not None:
        position, forward = (torch.as_tensor(np.asarray(v, dtype=np.float32)) for v in view_from)
        order = torch.argsort((g.means - position) @ forward, descending=True, stable=True)
        g, alpha = g[order], alpha[order]
    r = quat_to_rotmat(g.quats)
    s2 = torch.exp(2.0 * g.scales)
    cov = (r * s2[:, None, :]) @ r.transpose(1, 2)
    return {"centers": g.means.numpy(), "covariances": cov.numpy(),
            "rgbs": g.rgb.clamp(0, 1).numpy(), "opacities": alpha[:, None].numpy()}
