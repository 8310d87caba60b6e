"""``rasterize(gaussians, cameras, ...)``: 3D Gaussian splatting with three interchangeable backends.

- ``torch``: the reference, differentiable, any device (:mod:`~lyra3d.core.render.rasterize`);
- ``cpu``: a C kernel of the same arithmetic, compiled on first use (:mod:`~lyra3d.core.render.ckernel`);
- ``gsplat``: gsplat's CUDA kernels (``pip install lyra3d[cuda]``).
"""

from lyra3d.core.render.rasterize import (
                                          BACKENDS,
                                          RenderOutput,
                                          available_backends,
                                          cpu_kernel_available,
                                          rasterize,
                                          view_dependent_rgb,
)

__all__ = ["BACKENDS", "RenderOutput", "available_backends", "cpu_kernel_available", "rasterize", "view_dependent_rgb"]
