"""The conventions every other layer builds on: no weights, no model formats.

- :mod:`.cameras`       batched pinhole cameras (OpenCV axes), rays and Plücker embeddings
- :mod:`.trajectories`  Lyra's six camera trajectories, extra presets and smooth fly-through paths
- :mod:`.flythrough`    filming a scene along a named camera path
- :mod:`.gaussians`     3D Gaussians, spherical harmonics and the standard 3DGS PLY
- :mod:`.cache3d`       the 3D cache: unproject, z-buffered warp, multi-trajectory conditioning
- :mod:`.render`        ``rasterize(gaussians, cameras)``: torch reference, C kernel, gsplat
- :mod:`.metrics`       PSNR, SSIM, depth errors, LPIPS (when its weights are on disk)
- :mod:`.files`         atomic file and folder writes, JSON reading, resumable settings
- :mod:`.progress`      the one progress-callback protocol and the per-stage clock
- :mod:`.device`        device checks and the run's environment"""
