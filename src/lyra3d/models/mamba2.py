"""Mamba2 in pure PyTorch: the state-space-duality (SSD) scan by the chunked algorithm, and the bidirectional
Mamba2 block of Lyra-1's 3DGS decoder (Long-LRM's ``Mamba2Block``), parameter for parameter.

The block (names as in the official module, so checkpoints load key for key)::

    norm                      RMSNorm(d_model), eps 1e-5
    mamba.in_proj             Linear(d_model → 2·d_inner + 2·ngroups·d_state + nheads), no bias: [z, xBC, dt]
    mamba.mamba_scans.{0,1}   one per scan direction (0 forward, 1 over the reversed sequence), each with its own
                              conv1d (depthwise, causal, kernel d_conv, bias), dt_bias, A_log, D (nheads,) and
                              norm.weight (d_inner,): a gated RMSNorm, ``rmsnorm(y · silu(z)) · weight``
    mamba.out_proj            Linear(d_inner → d_model), no bias, applied to the sum of the directions

    y = x + out_proj(Σ_dir scan_dir(in_proj(norm(x))))    (the reverse scan reads and writes reversed)

A scan: ``xBC ← silu(causal depthwise conv(xBC))``, ``x, B, C ← split(xBC)``, ``dt ← softplus(dt + dt_bias)``,
``A = −exp(A_log)``, then per head ``h`` the recurrence (state ``S (headdim, d_state)``)::

    S_t = exp(dt_t·A_h)·S_{t−1} + dt_t · x_t ⊗ B_t        y_t = S_t · C_t + D_h · x_t

:func:`ssd_scan` computes it chunk by chunk (within a chunk as a masked, decay-weighted attention-like product;
across chunks by passing the chunk-end states), in float32. On CUDA, where ``mamba-ssm`` is installed and
importable, the same scan runs through its Triton kernel (``mamba_chunk_scan_combined``); everywhere else, and
with ``LYRA3D_MAMBA_KERNELS=0``, through the PyTorch code here. Both take the same parameters.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def ssd_chunked(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, chunk_size: int = 256,
                max_elements: int = 1 << 27) -> Tensor:
    """The SSD recurrence (without the ``D`` skip) by chunks, in float32.

    Args:
        x: ``(b, l, h, p)`` inputs per head; dt: ``(b, l, h)`` step sizes (after softplus); A: ``(h,)`` (negative);
        B, C: ``(b, l, g, n)`` with ``h`` a multiple of the ``g`` groups.
        chunk_size: tokens per chunk; max_elements: bounds the ``(chunks, Q, Q)`` decay products held at once
        (heads are processed in groups).
    Returns:
        ``y (b, l, h, p)`` in ``x``'s dtype.
    """
    out_dtype = x.dtype
    b, l, h, p = x.shape
    g, n = B.shape[2], B.shape[3]
    q = max(1, min(chunk_size, l))
    pad = (-l) % q
    x, dt, B, C = (t.float() for t in (x, dt, B, C))
    if pad:  # zero steps at the end: no input, no decay, nothing read back
        x, dt = F.pad(x, (0, 0, 0, 0, 0, pad)), F.pad(dt, (0, 0, 0, pad))
        B, C = F.pad(B, (0, 0, 0, 0, 0, pad)), F.pad(C, (0, 0, 0, 0, 0, pad))
    c = (l + pad) // q
    x = x.reshape(b, c, q, h, p)
    dt = dt.reshape(b, c, q, h)
    B, C = B.reshape(b, c, q, g, n), C.reshape(b, c, q, g, n)
    group = torch.arange(h, device=x.device) // (h // g)  # each head's group of B and C
    a = dt * A.float()  # (b, c, q, h): log-decay of each step
    acs = a.cumsum(2)  # within each chunk, inclusive
    totals = acs[:, :, -1]  # (b, c, h): log-decay across each chunk
    ends = totals.cumsum(1)  # from the start to each chunk's end
    starts = ends - totals  # ... to each chunk's start
    scores_g = torch.einsum("bcign,bcjgn->bcgij", C, B)  # C_i·B_j within each chunk, per group
    causal = torch.ones(q, q, dtype=torch.bool, device=x.device).tril()
    earlier = torch.ones(c, c, dtype=torch.bool, device=x.device).tril(-1)
    step = max(1, min(h, max_elements // max(1, b * c * q * q)))
    y = torch.empty_like(x)
    for h0 in range(0, h, step):
        hs = slice(h0, min(h, h0 + step))
        gs = group[hs]
        xs, dts, acs_h, tot = x[:, :, :, hs], dt[:, :, :, hs], acs[:, :, :, hs], totals[:, :, hs]
        hb, hc = B[:, :, :, gs], C[:, :, :, gs]  # (b, c, q, heads, n)
        # 1. within each chunk: y_i = sum_{j<=i} (C_i.B_j) exp(acs_i - acs_j) dt_j x_j
        at = acs_h.permute(0, 1, 3, 2)  # (b, c, heads, q)
        decay = torch.exp((at[..., :, None] - at[..., None, :]).masked_fill(~causal, -math.inf))
        weights = scores_g[:, :, gs] * decay * dts.permute(0, 1, 3, 2)[..., None, :]
        y_in = torch.einsum("bchij,bcjhp->bcihp", weights, xs)
        del decay, weights
        # 2. what each chunk adds to the state at its end: sum_j exp(acs_last - acs_j) dt_j x_j (x) B_j
        to_end = torch.exp(tot[:, :, None] - acs_h) * dts  # (b, c, q, heads)
        states = torch.einsum("bcjhp,bcjhn->bchpn", xs * to_end[..., None], hb)
        # 3. the state entering chunk k: sum_{k'<k} exp(log-decay from the end of k' to the start of k) states_k'
        gap = starts[:, :, hs].transpose(1, 2)[..., :, None] - ends[:, :, hs].transpose(1, 2)[..., None, :]
        carry = torch.exp(gap.masked_fill(~earlier, -math.inf))  # (b, heads, k, k')
        entering = torch.einsum("bhkm,bmhpn->bkhpn", carry, states)
        # 4. read the entering state, decayed to each step: exp(acs_i) C_i . S
        y_out = torch.einsum("bcihn,bchpn->bcihp", hc, entering) * torch.exp(acs_h)[..., None]
        y[:, :, :, hs] = y_in + y_out
    return y.reshape(b, c * q, h, p)[:, :l].to(out_dtype)


def _kernel():
    """``mamba_chunk_scan_combined`` from mamba-ssm's Triton kernels, or ``None`` where it cannot be imported
    (not installed, no Triton, a CPU-only build) or ``LYRA3D_MAMBA_KERNELS=0``."""
    if os.environ.get("LYRA3D_MAMBA_KERNELS", "1") == "0":
        return None
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined
    except Exception:  # noqa: BLE001 (ImportError, or a compiled extension missing from a pure-Python build)
        return None
    return mamba_chunk_scan_combined


def kernels_available() -> bool:
    """Whether :func:`ssd_scan` runs mamba-ssm's kernels for CUDA tensors."""
    return torch.cuda.is_available() and _kernel() is not None


def ssd_scan(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, chunk_size: int = 256,
             use_kernels: bool | None = None) -> Tensor:
    """The SSD recurrence with the ``D`` skip: mamba-ssm's Triton kernel for CUDA tensors where available (or
    ``use_kernels=True``), else :func:`ssd_chunked`. Shapes as in :func:`ssd_chunked`; ``D (h,)``."""
    kernel = _kernel() if (use_kernels is not False and x.is_cuda) else None
    if use_kernels and kernel is None:
        raise RuntimeError("mamba-ssm's kernels are not importable here (install mamba-ssm with Triton, on CUDA)")
    if kernel is not None:
        return kernel(x.contiguous(), dt.contiguous(), A.float(), B.contiguous(), C.contiguous(), chunk_size,
                      D=D.float())
    y = ssd_chunked(x, dt, A, B, C, chunk_size)
    return (y.float() + x.float() * D.float()[:, None]).to(x.dtype)


class GatedRMSNorm(nn.Module):
    """``rmsnorm(x · silu(z)) · weight`` over the last dimension (mamba-ssm's gated RMSNorm with
    ``norm_before_gate=False`` and one group), computed in float32."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        dtype = x.dtype
        x = x.float() * F.silu(z.float())
        x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(dtype)


class Mamba2Scan(nn.Module):
    """One scan direction: the causal conv, the SSD parameters and the gated norm (the official
    ``Mamba2SingleScan``); ``forward(zxbcdt (b, l, in_proj)) → (b, l, d_inner)``."""

    def __init__(self, d_model: int, d_state: int = 256, d_conv: int = 4, expand: int = 2, headdim: int = 64,
                 ngroups: int = 1, chunk_size: int = 256, A_init_range=(1.0, 16.0), dt_min: float = 1e-3,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        super().__init__()
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"expand·d_model ({self.d_inner}) must be a multiple of headdim ({headdim})")
        self.d_state, self.headdim, self.ngroups, self.chunk_size = d_state, headdim, ngroups, chunk_size
        self.nheads = self.d_inner // headdim
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=True)
        # the official initialisation: dt log-uniform in [dt_min, dt_max] (floored), stored as softplus⁻¹
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.empty(self.nheads).uniform_(*A_init_range).log())
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(self.d_inner, eps=1e-5)

    def forward(self, zxbcdt: Tensor) -> Tensor:
        b, l, _ = zxbcdt.shape
        gn = self.ngroups * self.d_state
        z, xbc, dt = zxbcdt.split([self.d_inner, self.d_inner + 2 * gn, self.nheads], dim=-1)
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :l].transpose(1, 2))  # causal: drop the right pad
        x, B, C = xbc.split([self.d_inner, gn, gn], dim=-1)
        dt = F.softplus(dt.float() + self.dt_bias.float())
        A = -torch.exp(self.A_log.float())
        y = ssd_scan(x.reshape(b, l, self.nheads, self.headdim), dt, A, B.reshape(b, l, self.ngroups, self.d_state),
                     C.reshape(b, l, self.ngroups, self.d_state), self.D, self.chunk_size)
        return self.norm(y.reshape(b, l, self.d_inner), z)


class BiMamba2(nn.Module):
    """``in_proj`` → the scans (forward, and over the reversed sequence) → sum → ``out_proj`` (the official
    ``Mamba2MultiScan`` with ``scan_type="bi"``, ``if_divide_out=False``)."""

    def __init__(self, d_model: int, directions: int = 2, **scan_kwargs):
        super().__init__()
        if directions not in (1, 2):
            raise ValueError(f"directions must be 1 (forward) or 2 (forward and reversed), got {directions}")
        scans = [Mamba2Scan(d_model, **scan_kwargs) for _ in range(directions)]
        s = scans[0]
        self.in_proj = nn.Linear(d_model, 2 * s.d_inner + 2 * s.ngroups * s.d_state + s.nheads, bias=False)
        self.mamba_scans = nn.ModuleList(scans)
        self.out_proj = nn.Linear(s.d_inner, d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        zxbcdt = self.in_proj(x)
        out = self.mamba_scans[0](zxbcdt)
        if len(self.mamba_scans) == 2:
            out = out + self.mamba_scans[1](zxbcdt.flip(1)).flip(1)
        return self.out_proj(out)


class Mamba2Block(nn.Module):
    """Pre-norm residual bidirectional Mamba2 (the official ``Mamba2Block``): ``x + mamba(norm(x))``."""

    def __init__(self, d_model: int, directions: int = 2, **scan_kwargs):
        super().__init__()
        self.norm = nn.RMSNorm(d_model, eps=1e-5)
        self.mamba = BiMamba2(d_model, directions, **scan_kwargs)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mamba(self.norm(x))
