"""GPU memory of a Wan VACE teacher (:mod:`lyra3d.models.diffusers_vace`) under each of diffusers' memory settings,
estimated stage by stage from the parts' weight bytes and the video's size, and the choice of setting and trajectory
batch.

The settings, from most to least GPU memory (and from fastest to slowest), as ``VACEVideoModel`` applies them:

- ``"none"``: every part on the GPU (text encoder, transformer, VAE);
- ``"model_offload"``: diffusers' ``enable_model_cpu_offload``: one part on the GPU at a time, moved in when it runs;
  the text encoder is sent back (``maybe_free_model_hooks``) as soon as the prompt is encoded, so it never shares
  the GPU with the VAE or the transformer;
- ``"group_offload"``: diffusers' block-level group offloading (``diffusers.hooks.apply_group_offloading``, one block
  per group, the next block prefetched on a CUDA stream from pinned CPU memory) of the transformer; the text encoder
  stays in CPU memory and runs there, once per prompt (streamed through group offloading, UMT5 left ~31 GiB
  allocated on an H200); the VAE (0.25 GB) stays on the GPU and encodes and decodes in tiles.
- ``"auto"``: the first of those that fits the GPU's free memory with the whole batch of trajectories, else the
  first that fits one trajectory at a time.

A scene runs in stages, one after the other, each with its own peak (:func:`stage_bytes`): ``text`` (the text encoder,
once per prompt), ``condition`` (the VAE encodes the control video's kept and generated halves, one trajectory at a
time), ``sample`` (the transformer, ``batch`` trajectories per call; classifier-free guidance's two passes run one
after the other) and ``decode`` (the VAE, one trajectory at a time, only when frames are asked for). The estimate of
a setting is the largest stage. The stages are linear models: the weights resident in that stage (their real bytes:
UMT5 keeps its ``wo`` layers in fp32), plus the transformer's activations per token (:data:`ACTIVATION_FACTOR` ×
(ffn + 4·dim) values per token, fitted to an H200 measurement of the 1.3B-size transformer: 7.1 GiB per forward at 81
frames of 480×832, 5.4 GiB at 33, 4.0 GiB of it weights), plus the VAE's peak per pixel-frame. They decide, they do
not promise: ``benchmarks/vace.py`` measures each stage's real peak beside its estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

from lyra3d.errors import InputError

#: The memory settings, most GPU memory first (``"auto"`` picks among them).
MEMORY_SETTINGS = ("none", "model_offload", "group_offload")
#: The stages of a scene, in order (:func:`stage_bytes`).
STAGES = ("text", "condition", "sample", "decode")
#: Activation values kept per token of one video, per (ffn_dim + 4·dim) (fitted, see the module docstring).
ACTIVATION_FACTOR = 3.5
#: VAE peak bytes per pixel-frame of one video (bf16), whole and tiled (an H200 measurement: 81 frames of
#: 480×832 decode at 4.7 GiB whole, 1.4 GiB tiled).
VAE_BYTES_PER_PIXEL_FRAME = {False: 4.7 * 2**30 / (81 * 480 * 832), True: 1.4 * 2**30 / (81 * 480 * 832)}
#: Groups resident at once under streamed group offloading: the running block and the prefetched next one.
RESIDENT_GROUPS = 2
GIB = 2**30


@dataclass(frozen=True)
class PartSizes:
    """Weight BYTES of a VACE pipeline's parts as loaded (each parameter at its own dtype) and the transformer's
    width: ``*_block`` is the largest block (the unit group offloading moves), ``*_rest`` what group offloading keeps
    on the GPU while the part runs (what lies outside the blocks: UMT5's 256k-token embedding, the transformer's
    patch and text embedders, ...)."""

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


def activation_bytes(sizes: PartSizes, batch: int, frames: int, height: int, width: int,
                     bytes_per_value: int = 2) -> int:
    """The transformer's activations for ``batch`` videos in one call (one of guidance's two passes)."""
    tokens = batch * video_tokens(frames, height, width, patch=sizes.patch)
    return int(ACTIVATION_FACTOR * tokens * (sizes.ffn_dim + 4 * sizes.dim) * bytes_per_value)


def stage_bytes(sizes: PartSizes, setting: str, batch: int, frames: int, height: int, width: int,
                bytes_per_value: int = 2, tiled: bool = False) -> dict[str, int]:
    """Estimated peak GPU bytes of each stage (:data:`STAGES`) of a VACE teacher under ``setting`` sampling ``batch``
    trajectories per transformer call (the VAE encodes and decodes one video at a time; ``tiled``: in tiles, as
    group offloading always does)."""
    if setting not in MEMORY_SETTINGS:
        raise InputError(f"memory must be auto or one of {', '.join(MEMORY_SETTINGS)}, got {setting!r}")
    act = activation_bytes(sizes, batch, frames, height, width, bytes_per_value)
    tiled = tiled or setting == "group_offload"
    vae = sizes.vae + int(VAE_BYTES_PER_PIXEL_FRAME[tiled] * frames * height * width * bytes_per_value / 2)
    if setting == "none":
        weights = sizes.text_encoder + sizes.transformer + sizes.vae
        return {"text": weights, "condition": weights - sizes.vae + vae, "sample": weights + act,
                "decode": weights - sizes.vae + vae}
    if setting == "model_offload":  # one part at a time
        return {"text": sizes.text_encoder, "condition": vae, "sample": sizes.transformer + act, "decode": vae}
    tr = sizes.transformer_rest + RESIDENT_GROUPS * sizes.transformer_block
    return {"text": sizes.vae, "condition": vae, "sample": sizes.vae + tr + act, "decode": vae}  # text on the CPU


def estimate_bytes(sizes: PartSizes, setting: str, batch: int, frames: int, height: int, width: int,
                   bytes_per_value: int = 2, tiled: bool = False) -> int:
    """Estimated peak GPU bytes of a whole scene: the largest of :func:`stage_bytes`."""
    return max(stage_bytes(sizes, setting, batch, frames, height, width, bytes_per_value, tiled).values())


@dataclass(frozen=True)
class MemoryPlan:
    """The memory setting and the trajectories per transformer call, with the estimated peak (bytes)."""

    setting: str
    batch: int
    estimate: int


def plan_memory(sizes: PartSizes, setting: str, trajectories: int, frames: int, height: int, width: int,
                free_bytes: int | None, bytes_per_value: int = 2, batch: int = 0, margin: float = 0.9) -> MemoryPlan:
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
    est = lambda s, n: estimate_bytes(sizes, s, n, frames, height, width, bytes_per_value)  # noqa: E731
    if free_bytes is None:
        chosen = "none" if setting == "auto" else setting
        return MemoryPlan(chosen, want, est(chosen, want))
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
                         f"{est(lower[0], 1) / GIB:.1f} GiB; --video-memory {lower[0]})")
    raise InputError(f"Wan VACE needs about {est(MEMORY_SETTINGS[-1], 1) / GIB:.1f} GiB for {size} even with "
                     f"memory=group_offload, the GPU has {free_bytes / GIB:.1f} GiB free; use fewer frames, a smaller "
                     "size or a GPU with more free memory")


def _largest_batch(setting: str, want: int, fits) -> int:
    n = want
    while n > 1 and not fits(setting, n):
        n -= 1
    return n
