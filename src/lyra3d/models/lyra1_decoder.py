"""Lyra-1's official 3DGS decoder (NVIDIA's ``LatentRecon``, the network of ``lyra_static.pt`` and
``lyra_dynamic.pt``) as a lyra3d model: the same parameters under the same names (the official checkpoint loads
key for key: ``lyra3d convert lyra1-decoder``), written from the official definitions' facts.

Tokens (per trajectory): the latents ``(T', C, h, w)`` through a ``1×2×2`` patch embedding (``patch_embed``: a
Conv3d then LayerNorm); plus, for the dynamic model, the time of each frame and the target time (both encoded by
the tokenizer as videos, then ``patch_time_embed`` / ``patch_time_embed_tgt``, zero-initialised); plus the
Plücker rays ``(o × d, d)`` of every frame, which the released models also pass through the tokenizer (each
3-channel half as a video, the two latents concatenated: 32 channels) and a ``1×2×2`` patch embedding
(``patch_plucker_embed``, zero-initialised; without the tokenizer: a pixel patch of 8 frames × 16 × 16).
All trajectories' tokens form one sequence (trajectory, frame, row, column) through 16 blocks of width 512: a
transformer block (8 heads, full attention) at every 8th place, bidirectional Mamba2 blocks
(:mod:`lyra3d.models.mamba2`) elsewhere; then LayerNorm (``enc_norm``).

Head (``deconv``): a transposed 3D convolution (kernel 9×2×2, stride 8×2×2, temporal padding 4) from each
trajectory's token grid to every decoded frame (``1 + 8(T'−1)``) at one Gaussian per 8×8 pixels, 12 numbers
each. It runs over chunks of frames (:attr:`Lyra1DecoderConfig.head_chunk_frames`), each from the latent
frames it needs, so memory stays bounded. Activations (official): distance along the unit ray through the
block's centre ``near·(1−w) + far·w`` with ``w = sigmoid(x − 1.65)`` (0.1 to 500), rgb ``0.5·tanh(x) + 0.5``,
scale ``min(exp(x − (1 − ln 0.3)), 0.3)``, rotation normalised (``wxyz``, gsplat's), opacity ``sigmoid(x − 2)``.
:meth:`Lyra1Decoder.forward` returns them in the official 14-number layout ``[xyz, opacity, scale(3),
rotation(4), rgb]``; the released models then keep the 20 % most opaque (``gaussians_prune_ratio`` 0.8);
:func:`to_gaussians` turns them into lyra3d :class:`~lyra3d.core.gaussians.Gaussians` (rgb as the degree-0
SH coefficient, log-scales, opacity logits).

Not supported (unused by the released models): the Cosmos-decoder head, the channel-reducing output layer,
learned sub-sampling, position offsets, a learned positional embedding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lyra3d.core.cameras import Cameras, pixel_rays
from lyra3d.core.gaussians import Gaussians
from lyra3d.errors import InputError
from lyra3d.models.configs import Lyra1DecoderConfig
from lyra3d.models.mamba2 import Mamba2Block
from lyra3d.models.modeling import Pretrained

#: The official Gaussian layout: position 3, opacity 1, scale 3, rotation 4 (wxyz), rgb 3.
LAYOUT = {"xyz": slice(0, 3), "opacity": slice(3, 4), "scale": slice(4, 7), "rotation": slice(7, 11),
          "rgb": slice(11, 14)}


class PatchEmbed3D(nn.Module):
    """``(N, T, C, H, W)`` → tokens ``(N, T'·h·w, D)``: a Conv3d with kernel = stride = ``patch`` (and
    ``padding``), then LayerNorm."""

    def __init__(self, patch: tuple[int, int, int], in_channels: int, dim: int, padding=(0, 0, 0),
                 zero_init: bool = False):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, dim, patch, stride=patch, padding=padding)
        self.norm = nn.LayerNorm(dim)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        else:
            nn.init.normal_(self.proj.weight, 0.0, math.sqrt(2.0 / (math.prod(patch) * dim)))
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.proj(x.transpose(1, 2)).flatten(2).transpose(1, 2))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm attention + MLP (LayerNorm eps 1e-6, exact GELU), full attention over the whole sequence."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class Lyra1Decoder(Pretrained):
    """Lyra-1's 3DGS decoder: latents (+ Plücker latents, + time latents) of ``V`` trajectories → Gaussians."""

    config_class = Lyra1DecoderConfig
    model_type = "lyra1-3dgs-decoder"

    def __init__(self, config: Lyra1DecoderConfig):
        super().__init__()
        self.config = cfg = config
        d, c, p, pt = cfg.dim, cfg.latent_channels, cfg.patch_size, cfg.patch_size_temporal
        tc, sc = cfg.temporal_compression, cfg.spatial_compression
        if d % cfg.heads:
            raise ValueError(f"dim {d} must be a multiple of heads {cfg.heads}")
        if len(cfg.output_factor) != 3 or (sc * p) % cfg.output_factor[1] or (sc * p) % cfg.output_factor[2] \
                or tc % cfg.output_factor[0]:
            raise ValueError(f"output_factor {cfg.output_factor} must divide ({tc}, {sc * p}, {sc * p})")
        scan = {"d_state": cfg.mamba_d_state, "d_conv": cfg.mamba_d_conv, "expand": cfg.mamba_expand,
                "headdim": cfg.mamba_headdim, "chunk_size": cfg.mamba_chunk_size}
        self.enc_blocks = nn.ModuleList(
            TransformerBlock(d, cfg.heads, cfg.mlp_ratio)
            if not cfg.use_mamba or (i + 1) % cfg.transformer_every == 0
            else Mamba2Block(d, cfg.mamba_directions, **scan)
            for i in range(cfg.depth))
        self.enc_norm = nn.LayerNorm(d, eps=1e-6)
        video_patch = (pt, p, p)
        self.patch_embed = PatchEmbed3D(video_patch, c, d)
        if cfg.plucker_from_latents:
            self.patch_plucker_embed = PatchEmbed3D(video_patch, 2 * c, d, zero_init=True)
        else:
            self.patch_plucker_embed = PatchEmbed3D((tc, sc * p, sc * p), 6, d, padding=(tc // 2, 0, 0),
                                                    zero_init=True)
        if cfg.time_embedding:
            self.patch_time_embed = PatchEmbed3D(video_patch, c, d, zero_init=True)
            self.patch_time_embed_tgt = PatchEmbed3D(video_patch, c, d, zero_init=True)
        elif cfg.dynamic:
            raise ValueError("dynamic needs time_embedding")
        stride = (tc // cfg.output_factor[0], sc * p // cfg.output_factor[1], sc * p // cfg.output_factor[2])
        self.deconv = nn.ConvTranspose3d(d, cfg.output_dims, (stride[0] + 1, stride[1], stride[2]), stride=stride,
                                         padding=(tc // 2, 0, 0))
        for module in self.modules():  # the official initialisation of linear layers and norms
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # -- shapes -----------------------------------------------------------------------------------------
    def frames(self, latent_frames: int) -> int:
        """Decoded frames for ``latent_frames`` (the head's output length: 121 for 16)."""
        s, k, pad = self.deconv.stride[0], self.deconv.kernel_size[0], self.deconv.padding[0]
        return (latent_frames - 1) * s - 2 * pad + k

    def gaussian_grid(self, h: int, w: int) -> tuple[int, int]:
        """Gaussian rows and columns per frame for latents of ``h × w``."""
        p = self.config.patch_size
        return h // p * self.deconv.stride[1], w // p * self.deconv.stride[2]

    def check(self, latents: Tensor, plucker: Tensor, rays_o: Tensor, rays_d: Tensor,
              time_latents: Tensor | None, target_time_latents: Tensor | None) -> None:
        cfg = self.config
        if latents.ndim != 6 or latents.shape[3] != cfg.latent_channels:
            raise InputError(f"latents must be (B, V, T', {cfg.latent_channels}, h, w), got {tuple(latents.shape)}")
        b, v, tl, c, h, w = latents.shape
        if h % cfg.patch_size or w % cfg.patch_size or tl % cfg.patch_size_temporal:
            raise InputError(f"latents {tl}x{h}x{w} must be multiples of the patch ({cfg.patch_size_temporal}, "
                             f"{cfg.patch_size}, {cfg.patch_size})")
        t, (hg, wg) = self.frames(tl), self.gaussian_grid(h, w)
        if cfg.plucker_from_latents:
            want = (b, v, tl, 2 * c, h, w)
        else:
            want = (b, v, t, 6, h * cfg.spatial_compression, w * cfg.spatial_compression)
        if tuple(plucker.shape) != want:
            raise InputError(f"Plücker input must be {want} for these latents, got {tuple(plucker.shape)}")
        for name, rays in (("rays_o", rays_o), ("rays_d", rays_d)):
            if tuple(rays.shape) != (b, v, t, 3, hg, wg):
                raise InputError(f"{name} must be {(b, v, t, 3, hg, wg)} (every decoded frame, one ray per "
                                 f"Gaussian), got {tuple(rays.shape)}")
        if cfg.dynamic:
            if time_latents is None or target_time_latents is None:
                raise InputError("the dynamic decoder needs time_latents and target_time_latents")
            if tuple(time_latents.shape) != (b, tl, c, h, w) or tuple(target_time_latents.shape) != (b, 1, c, h, w):
                raise InputError(f"time latents must be {(b, tl, c, h, w)} and {(b, 1, c, h, w)}, got "
                                 f"{tuple(time_latents.shape)} and {tuple(target_time_latents.shape)}")

    # -- forward ----------------------------------------------------------------------------------------
    def forward(self, latents: Tensor, plucker: Tensor, rays_o: Tensor, rays_d: Tensor,
                time_latents: Tensor | None = None, target_time_latents: Tensor | None = None,
                prune: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """Gaussians ``(B, N, 14)`` in the official layout (:data:`LAYOUT`), float32.

        Args:
            latents: ``(B, V, T', C, h, w)``, the trajectories' latents.
            plucker: ``(B, V, T', 2C, h, w)``: the tokenizer's latents of each trajectory's ``o × d`` and ``d``
                videos, concatenated (:func:`encode_plucker`); without ``plucker_from_latents`` the rays
                themselves, ``(B, V, T, 6, H, W)``.
            rays_o, rays_d: ``(B, V, T, 3, H/8, W/8)``: origin and unit direction of each Gaussian's ray
                (:func:`gaussian_rays`), ``T = 1 + 8(T' − 1)`` decoded frames.
            time_latents, target_time_latents: the dynamic model's ``(B, T', C, h, w)`` and ``(B, 1, C, h, w)``
                (:func:`encode_times`).
            prune: apply the configured opacity pruning (``prune_ratio``) to the union of all frames.
        """
        cfg = self.config
        self.check(latents, plucker, rays_o, rays_d, time_latents, target_time_latents)
        b, v, tl, _, h, w = latents.shape
        dtype = self.patch_embed.proj.weight.dtype
        x = self.patch_embed(latents.flatten(0, 1).to(dtype))  # (B·V, n, D)
        n = x.shape[1]
        if cfg.dynamic:
            t_in = self.patch_time_embed(time_latents.to(dtype))
            t_tgt = self.patch_time_embed_tgt(target_time_latents.to(dtype).expand(-1, tl, -1, -1, -1))
            x = x + t_in.repeat_interleave(v, 0) + t_tgt.repeat_interleave(v, 0)
        x = x + self.patch_plucker_embed(plucker.flatten(0, 1).to(dtype))
        x = x.reshape(b, v * n, -1)  # one sequence: trajectory, frame, row, column
        for block in self.enc_blocks:
            x = block(x)
        x = self.enc_norm(x).reshape(b * v, n, -1)
        g = self.head(x, rays_o.flatten(0, 1), rays_d.flatten(0, 1), tl, h // cfg.patch_size, w // cfg.patch_size)
        g = g.reshape(b, -1, 14)
        return prune_gaussians(g, cfg.prune_ratio, cfg.random_ratio, generator) if prune else g

    def head(self, x: Tensor, rays_o: Tensor, rays_d: Tensor, tl: int, hp: int, wp: int) -> Tensor:
        """Tokens ``(N, tl·hp·wp, D)`` → activated Gaussians ``(N, T·H·W, 14)`` (frame, row, column order),
        the transposed convolution run over chunks of ``head_chunk_frames`` output frames."""
        grid = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], tl, hp, wp)
        s, k, pad = self.deconv.stride[0], self.deconv.kernel_size[0], self.deconv.padding[0]
        t = self.frames(tl)
        step = max(1, self.config.head_chunk_frames)
        out = []
        for o0 in range(0, t, step):
            o1 = min(t, o0 + step)
            # the latent frames that reach output frames o0..o1-1: o = i·s + j − pad with 0 <= j < k
            i0 = max(0, -((k - 1 - o0 - pad) // s))
            i1 = min(tl - 1, (o1 - 1 + pad) // s)
            y = F.conv_transpose3d(grid[:, :, i0:i1 + 1], self.deconv.weight, self.deconv.bias,
                                   stride=self.deconv.stride)
            start = o0 - i0 * s + pad
            y = y[:, :, start:start + (o1 - o0)].permute(0, 2, 3, 4, 1)  # (N, f, H, W, 12)
            ro = rays_o[:, o0:o1].permute(0, 1, 3, 4, 2)
            rd = rays_d[:, o0:o1].permute(0, 1, 3, 4, 2)
            out.append(self.activate(y, ro, rd).flatten(1, 3))
        return torch.cat(out, 1)

    def activate(self, raw: Tensor, rays_o: Tensor, rays_d: Tensor) -> Tensor:
        """Raw ``(..., 12)`` [distance, rgb 3, scale 3, rotation 4, opacity] → ``(..., 14)`` (float32)."""
        cfg = self.config
        raw, rays_o, rays_d = raw.float(), rays_o.float(), rays_d.float()
        distance, rgb, scale, rotation, opacity = raw.split([1, 3, 3, 4, 1], dim=-1)
        w = torch.sigmoid(distance + cfg.distance_shift)
        xyz = rays_o + rays_d * (cfg.near * (1 - w) + cfg.far * w)
        scale = torch.clamp(torch.exp(scale - (1 - math.log(cfg.scale_cap))), max=cfg.scale_cap)
        return torch.cat([xyz, torch.sigmoid(opacity - 2.0), scale, F.normalize(rotation, dim=-1),
                          0.5 * torch.tanh(rgb) + 0.5], -1)

    # -- one scene ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, latents: Tensor, cameras: Cameras, encode: Callable[[Tensor], Tensor] | None = None,
               plucker: Tensor | None = None, times: Tensor | None = None, target_time: float | None = None,
               prune: bool = True, generator: torch.Generator | None = None) -> Gaussians:
        """One scene: ``latents (V, T', C, h, w)`` and every decoded frame's ``cameras`` (V·T, trajectory-major,
        at the image resolution) → lyra3d Gaussians.

        ``encode`` is the tokenizer's encoder as Lyra calls it: a video ``(N, T, 3, H, W)`` → latents
        ``(N, T', C, h, w)`` (the rays and time codes are passed unnormalised, as the official code does); it
        makes the Plücker latents (unless ``plucker`` gives them) and, for the dynamic model, the time latents of
        ``times (T,)`` (in [0, 1]) and ``target_time``."""
        cfg = self.config
        v, tl = latents.shape[:2]
        t = self.frames(tl)
        if len(cameras) != v * t:
            raise InputError(f"{len(cameras)} cameras for {v} trajectories of {t} decoded frames ({tl} latent "
                             f"frames); give {v * t}")
        dev, dtype = latents.device, self.patch_embed.proj.weight.dtype
        cameras = cameras.to(dev)
        if plucker is None:
            if cfg.plucker_from_latents and encode is None:
                raise InputError("the official decoder reads the tokenizer's latents of the Plücker rays: pass "
                                 "encode (the tokenizer's encoder) or plucker")
            def view(i: int) -> Tensor:  # one trajectory's rays at a time (6 of 121 frames at 704x1280: 16 GB)
                return official_plucker(cameras[i * t:(i + 1) * t]).to(dtype)

            plucker = torch.stack([encode_plucker(view(i)[None], encode)[0] if cfg.plucker_from_latents else view(i)
                                   for i in range(v)])
        rays = [gaussian_rays(cameras[i * t:(i + 1) * t], cfg.gaussian_stride) for i in range(v)]
        rays_o = torch.stack([r[0] for r in rays])[None]
        rays_d = torch.stack([r[1] for r in rays])[None]
        time_in = time_tgt = None
        if cfg.dynamic:
            if encode is None or times is None or target_time is None:
                raise InputError("the dynamic decoder needs encode, times (one per decoded frame) and target_time")
            time_in, time_tgt = encode_times(times.to(dev), float(target_time), cameras.height, cameras.width,
                                             encode, dtype)
        g = self(latents[None], plucker[None], rays_o, rays_d, time_in, time_tgt, prune=prune,
                 generator=generator)[0]
        out = to_gaussians(g)
        if cfg.dynamic:
            out.times = torch.full((g.shape[0],), float(target_time), device=g.device)
        return out


def prune_gaussians(g: Tensor, prune_ratio: float, random_ratio: float = 0.0,
                    generator: torch.Generator | None = None) -> Tensor:
    """The official opacity pruning (after Long-LRM) of ``g (B, N, 14)``: keep the most opaque
    ``(1 − prune_ratio)(1 − random_ratio)`` share, plus a random ``(1 − prune_ratio)·random_ratio`` share of the
    rest; the counts are computed as the official code does (``int`` of the float products)."""
    if prune_ratio <= 0:
        return g
    n = g.shape[1]
    keep_ratio = 1 - prune_ratio
    rand_ratio = keep_ratio * random_ratio
    keep_ratio = keep_ratio - rand_ratio
    num_keep, num_rand = int(n * keep_ratio), int(n * rand_ratio)
    order = g[:, :, 3].argsort(dim=1, descending=True)
    idx = order[:, :num_keep]
    if num_rand > 0:
        rest = order[:, num_keep:]
        pick = torch.randperm(rest.shape[1], generator=generator, device=generator.device if generator else "cpu")
        idx = torch.cat([idx, rest[:, pick[:num_rand].to(rest.device)]], 1)
    return g.gather(1, idx[..., None].expand(-1, -1, g.shape[-1]))


def to_gaussians(g: Tensor) -> Gaussians:
    """Official Gaussians ``(N, 14)`` → lyra3d :class:`Gaussians` (log-scales, opacity logits, rgb as the
    degree-0 SH coefficient: the same colour in any 3DGS renderer at SH degree 0)."""
    g = g.float()
    return Gaussians.from_activated(g[:, LAYOUT["xyz"]], g[:, LAYOUT["scale"]], g[:, LAYOUT["rotation"]],
                                    g[:, 3], g[:, LAYOUT["rgb"]])


def official_plucker(cameras: Cameras) -> Tensor:
    """The official Plücker rays ``(N, 6, H, W)``: ``o × d`` then the unit direction ``d`` (pixel centres)."""
    o, d = pixel_rays(cameras)
    return torch.cat([torch.linalg.cross(o, d), d], -1).permute(0, 3, 1, 2).contiguous()


def gaussian_rays(cameras: Cameras, stride: int) -> tuple[Tensor, Tensor]:
    """Origins and unit directions ``(N, 3, H/stride, W/stride)`` through the centre of each ``stride × stride``
    block (the official rays: intrinsics divided by the stride)."""
    o, d = pixel_rays(cameras.resized(cameras.width // stride, cameras.height // stride))
    return o.permute(0, 3, 1, 2).contiguous(), d.permute(0, 3, 1, 2).contiguous()


def encode_plucker(plucker: Tensor, encode: Callable[[Tensor], Tensor]) -> Tensor:
    """``(B, T, 6, H, W)`` rays → ``(B, T', 2C, h, w)``: the tokenizer's latents of the ``o × d`` video and of
    the ``d`` video, concatenated on channels (as the released models read them)."""
    return torch.cat([encode(plucker[:, :, :3]), encode(plucker[:, :, 3:])], 2)


def time_code(t: Tensor) -> Tensor:
    """The official time code of times ``t (N,)`` in [0, 1]: ``[t, cos t, sin t]`` (N, 3)."""
    t = t.float()
    return torch.stack([t, torch.cos(t), torch.sin(t)], -1)


def encode_times(times: Tensor, target_time: float, height: int, width: int, encode: Callable[[Tensor], Tensor],
                 dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """The dynamic model's time latents: the frames' codes and the target's, each spread over the image as a
    video with values ``2·code − 1`` and encoded: ``(1, T', C, h, w)`` and ``(1, 1, C, h, w)``."""
    def video(codes: Tensor) -> Tensor:
        return (codes * 2 - 1)[None, :, :, None, None].expand(1, -1, -1, height, width).to(dtype)

    return (encode(video(time_code(times))),
            encode(video(time_code(torch.tensor([target_time], device=times.device)))))
