"""lyra3d: generative 3D scene reconstruction by video-diffusion self-distillation.

The public API is grouped by concept, one module each:

- :mod:`lyra3d.cameras`    camera batches, intrinsics, Plücker rays, Lyra's trajectories, fly-throughs
- :mod:`lyra3d.gaussians`  3D Gaussians, spherical harmonics and the standard 3DGS PLY
- :mod:`lyra3d.render`     ``rasterize(gaussians, cameras, ...)``: torch reference, CPU kernel, gsplat
- :mod:`lyra3d.worlds`     procedural 3D worlds with exact ground truth; :mod:`lyra3d.datasets` on disk
- :mod:`lyra3d.cache3d`    the 3D cache: unproject, z-buffered warp, multi-trajectory conditioning
- :mod:`lyra3d.depth`      monocular depth: the estimator interface, the shipped network, depth files
- :mod:`lyra3d.metrics`    PSNR, SSIM, depth errors, LPIPS (when weights are on disk)
- :mod:`lyra3d.export`     PLY, .splat, USD/USDZ; :mod:`lyra3d.viewer` the web viewer; :mod:`lyra3d.video`
- :mod:`lyra3d.checkpoint` ``save_pretrained`` / ``from_pretrained`` (config.json + model.safetensors)
- :mod:`lyra3d.pipelines`  ``ImageTo3DPipeline`` / ``TextTo3DPipeline``: an image or a prompt → Gaussians
  (what ``lyra3d generate`` runs)
"""

__version__ = "0.1.0"

from lyra3d.errors import InputError, LyraError

__all__ = ["InputError", "LyraError", "__version__"]
