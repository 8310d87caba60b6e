"""lyra3d: generative 3D scene reconstruction by video-diffusion self-distillation.

The public API is grouped by concept, one module each:

- :mod:`lyra3d.cameras`   camera batches, intrinsics, Plücker rays, trajectories
- :mod:`lyra3d.gaussians` 3D Gaussians and the standard 3DGS PLY
- :mod:`lyra3d.render`    ``rasterize(gaussians, cameras, ...)`` with a torch and a gsplat backend
- :mod:`lyra3d.worlds`    procedural 3D worlds with exact ground truth
- :mod:`lyra3d.metrics`   PSNR, SSIM, depth errors, LPIPS (when weights are on disk)
"""

__version__ = "0.1.0"

from lyra3d.errors import InputError, LyraError  # noqa: E402,F401
