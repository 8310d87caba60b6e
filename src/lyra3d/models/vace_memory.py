"""GPU memory of a Wan VACE teacher (:mod:`lyra3d.models.diffusers_vace`) under each of diffusers' memory settings,
estimated from the parts' parameter counts and the video's size, and the choice of setting and trajectory batch.

The settings, from most to least GPU memory (and from fastest to slowest):

- ``"none"``: every part on the GPU (text encoder, transformer, VAE);
- ``"model_offload"``: diffusers' ``enable_model_cpu_offload``: one part on the GPU at a time (the others in CPU
  memory), moved in when it runs;
- ``"group_offload"``: diffusers' group offloading (``diffusers.hooks.apply_group_offloading`` /
  ``ModelMixin.enable_group_offload``, block level, one block per group, prefetched on a CUDA stream) for the
  transformer and the text encoder; the VAE stays on the GPU and encodes and decodes in tiles.
- ``"auto"``: the first of those that fits the GPU's free memory with the whole batch of trajectories, else the
  first that fits one trajectory at a time.

The estimates are linear models: weights in the run dtype, plus the transformer's activations per token
(:data:`ACTIVATION_FACTOR` × (ffn + 4·dim) values per token, fitted to an H200 measurement of the 1.3B-size
transformer: 7.1 GiB per forward at 81 frames of 480×832, 5.4 GiB at 33), plus the VAE's peak per pixel-frame. They
decide, they do not promise: ``benchmarks/vace.py`` measures the real peaks.
"""

from __future__ import annotations

from dataclasses import dataclass

from lyra3d.errors import InputError

#: The memory settings, most GPU memory first (``"auto"`` picks among them).
MEMORY_SETTINGS = ("none", "model_offload", "group_offload")
#: Activation values kept per token of one video, per (ffn_dim + 4·dim) (fitted, see the module docstring).
ACTIVATION_FACTOR = 3.5
#: VAE peak bytes per pixel-frame of one video (bf16), whole and tiled (an H200 measurement: 81 frames of
#: 480×832 decode at 4.7 GiB whole, 1.4 GiB tiled).
VAE_BYTES_PER_PIXEL_FRAME = {False: 4.7 * 2**30 / (81 * 480 * 832), True: 1.4 * 2**30 / (81 * 480 * 832)}
GIB = 2**30


@dataclass(frozen=True)
class PartSizes:
    """Parameter counts of a VACE pipeline's parts and the transformer's width: ``*_block`` is the largest block
    (the unit group offloading moves), ``*_rest`` what lies outside the blocks (always on the GPU under group
    offloading)."""

    text_encoder: int
    text_encoder_block: int
    text_encoder_rest: int
    transformer: int
    transformer_block: int
    transformer_rest: int
    vae: int
    dim: int
    ffn_dim: int
    patch: tuple[int, int, int] = (1, 2, 2)


def video_tokens(frames: int, height: int, width: int, spatial: int = 8, temporal: int = 4,
                 patch: tuple[int, int, int] = (1, 2, 2)) -> int:
    """The transformer's tokens for one video of ``frames`` frames (``1 + k·m``) at ``height × width``."""
    latent_frames = 1 + (frames - 1) // temporal
    return (latent_frames // patch[0]) * (height // spatial // patch[1]) * (width // spatial // patch[2])


def estimate_bytes(sizes: PartSizes, setting: str, batch: int, frames: int, height: int, width: int,
                   bytes_per_param: int = 2, tiled: bool = False) -> int:
    """Estimated peak GPU bytes of a VACE teacher under ``setting`` sampling ``batch`` trajectories at once
    (transformer activations scale with the batch; the VAE encodes and decodes one video at a time)."""
    b = bytes_per_param
    tokens = batch * video_tokens(frames, height, width, patch=sizes.patch)
    act = int(ACTIVATION_FACTOR * tokens * (sizes.ffn_dim + 4 * sizes.dim) * b)
    tiled = tiled or setting == "group_offload"
    vae_act = int(VAE_BYTES_PER_PIXEL_FRAME[tiled] * frames * height * width * b / 2)
    vae = sizes.vae * b
    if setting == "none":
        return (sizes.text_encoder + sizes.transformer) * b + vae + max(act, vae_act)
    if setting == "model_offload":
        return max(sizes.text_encoder * b, sizes.transformer * b + act, vae + vae_act)
    if setting == "group_offload":  # two groups resident (one running, one prefetched) + what is outside blocks
        te = (sizes.text_encoder_rest + 2 * sizes.text_encoder_block) * b
        tr = (sizes.transformer_rest + 2 * sizes.transformer_block) * b + act
        return vae + max(te, tr, vae_act)
    raise InputError(f"memory must be auto or one of {', '.join(MEMORY_SETTINGS)}, got {setting!r}")


@dataclass(frozen=True)
class MemoryPlan:
    """The memory setting and the trajectories per transformer call, with the estimated peak (bytes)."""

    setting: str
    batch: int
    estimate: int


def plan_memory(sizes: PartSizes, setting: str, trajectories: int, frames: int, height: int, width: int,
                free_bytes: int | None, bytes_per_param: int = 2, batch: int = 0, margin: float = 0.9) -> MemoryPlan:
    """Choose the setting (``"auto"``) and the trajectory batch (``batch`` 0: as many of ``trajectories`` as fit)
    for a GPU with ``free_bytes`` free (``None``: a CPU, no limit: ``"none"``, all at once). Only ``margin`` of the
    free memory is planned for.

    Raises:
        InputError: the chosen setting does not fit even one trajectory at a time: the message names the setting
            that would fit, or says that none does."""
    if setting != "auto" and setting not in MEMORY_SETTINGS:
        raise InputError(f"memory must be auto or one of {', '.join(MEMORY_SETTINGS)}, got {setting!r}")
    if batch < 0:
        raise InputError(f"trajectory batch must be >= 0 (0: as many as fit), got {batch}")
    want = min(batch, trajectories) if batch else trajectories
    est = lambda s, n: estimate_bytes(sizes, s, n, frames, height, width, bytes_per_param)  # noqa: E731
    if free_bytes is None:
        return MemoryPlan("none" if setting == "auto" else setting, want, est("none", want))
    room = margin * free_bytes
    fits = lambda s, n: est(s, n) <= room  # noqa: E731
    if setting == "auto":  # the fastest setting that takes the whole batch, else the fastest at one trajectory
        for n in (want, 1):
            for s in MEMORY_SETTINGS:
                if fits(s, n):
                    return MemoryPlan(s, _largest_batch(s, want, fits), est(s, _largest_batch(s, want, fits)))
        setting = MEMORY_SETTINGS[-1]
    elif fits(setting, 1):
        n = want if batch else _largest_batch(setting, want, fits)
        return MemoryPlan(setting, n, est(setting, n))
    size = f"{frames} frames of {width}x{height}"
    lower = [s for s in MEMORY_SETTINGS if fits(s, 1)]
    if lower:
        raise InputError(f"Wan VACE with memory={setting} needs about {est(setting, 1) / GIB:.1f} GiB for "
                         f"{size}, the GPU has {free_bytes / GIB:.1f} GiB free; memory={lower[0]} fits (about "
                         f"{est(lower[0], 1) / GIB:.1f} GiB)")
    raise InputError(f"Wan VACE needs about {est(MEMORY_SETTINGS[-1], 1) / GIB:.1f} GiB for {size} even with "
                     f"memory=group_offload, the GPU has {free_bytes / GIB:.1f} GiB free; use fewer frames, a smaller "
                     "size or a GPU with more free memory")


def _largest_batch(setting: str, want: int, fits) -> int:
    n = want
    while n > 1 and not fits(setting, n):
        n -= 1
    return n
