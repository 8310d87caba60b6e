"""The pure-PyTorch Mamba2 (lyra3d.models.mamba2): the chunked SSD against a sequential scan written here, and the
bidirectional block against a step-by-step reference of the official block's definition."""

import pytest
import torch
import torch.nn.functional as F

from lyra3d.models.mamba2 import Mamba2Block, ssd_chunked, ssd_scan


def sequential_scan(x, dt, A, B, C):
    """S_t = exp(dt_t A) S_{t-1} + dt_t x_t (x) B_t; y_t = S_t C_t, one step at a time, float64."""
    b, l, h, p = x.shape
    g = B.shape[2]
    S = torch.zeros(b, h, p, B.shape[3], dtype=torch.float64)
    ys = []
    for t in range(l):
        Bt, Ct = B[:, t].repeat_interleave(h // g, 1), C[:, t].repeat_interleave(h // g, 1)  # (b, h, n)
        S = torch.exp(dt[:, t] * A)[..., None, None] * S + (dt[:, t, :, None] * x[:, t])[..., None] * Bt[:, :, None]
        ys.append(torch.einsum("bhpn,bhn->bhp", S, Ct))
    return torch.stack(ys, 1)


def random_ssd(b=2, l=45, h=4, p=3, g=2, n=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, h, p, generator=gen, dtype=torch.float64)
    dt = torch.rand(b, l, h, generator=gen, dtype=torch.float64) * 0.6
    A = -torch.rand(h, generator=gen, dtype=torch.float64) * 2 - 0.1
    B = torch.randn(b, l, g, n, generator=gen, dtype=torch.float64)
    C = torch.randn(b, l, g, n, generator=gen, dtype=torch.float64)
    return x, dt, A, B, C


@pytest.mark.parametrize("chunk", [1, 4, 16, 45, 64])
def test_chunked_ssd_equals_sequential_scan(chunk):
    x, dt, A, B, C = random_ssd()
    want = sequential_scan(x, dt, A, B, C)
    # a small element budget forces one head at a time (the memory-bounded path)
    got = ssd_chunked(x.float(), dt.float(), A.float(), B.float(), C.float(), chunk, max_elements=64)
    assert got.dtype == torch.float32 and got.shape == want.shape
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)
    whole = ssd_chunked(x.float(), dt.float(), A.float(), B.float(), C.float(), chunk)
    torch.testing.assert_close(whole, got, atol=1e-6, rtol=1e-6)


def test_ssd_scan_adds_the_skip_and_keeps_dtype():
    x, dt, A, B, C = random_ssd(l=20, g=1)
    D = torch.tensor([0.5, -1.0, 2.0, 0.0])
    want = sequential_scan(x, dt, A, B, C) + x * D.double()[:, None]
    got = ssd_scan(x.float(), dt.float(), A.float(), B.float(), C.float(), D, chunk_size=8)
    torch.testing.assert_close(got.double(), want, atol=2e-5, rtol=1e-5)
    assert ssd_scan(x.bfloat16(), dt.float(), A.float(), B.bfloat16(), C.bfloat16(), D, 8).dtype == torch.bfloat16


def reference_block(block: Mamba2Block, x: torch.Tensor) -> torch.Tensor:
    """The official block's definition, step by step (own code): RMSNorm, in_proj, per direction causal
    depthwise conv + SiLU, softplus(dt + dt_bias), sequential SSD + D skip, gated RMSNorm; sum; out_proj."""
    x = x.double()
    w = block.norm.weight.double()
    h_in = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + 1e-5) * w
    zxbcdt = h_in @ block.mamba.in_proj.weight.double().T
    total = 0
    for direction, scan in enumerate(block.mamba.mamba_scans):
        seq = zxbcdt.flip(1) if direction else zxbcdt
        d_in, n, heads, hd = scan.d_inner, scan.d_state, scan.nheads, scan.headdim
        z, xbc, dt = seq.split([d_in, d_in + 2 * n, heads], -1)
        k = scan.conv1d.weight.shape[-1]
        padded = F.pad(xbc, (0, 0, k - 1, 0))  # causal: the past only
        conv = sum(padded[:, i:i + xbc.shape[1]] * scan.conv1d.weight.double()[:, 0, i] for i in range(k))
        xbc = F.silu(conv + scan.conv1d.bias.double())
        xs, B, C = xbc.split([d_in, n, n], -1)
        dt = F.softplus(dt + scan.dt_bias.double())
        A = -torch.exp(scan.A_log.double())
        b, l, _ = xs.shape
        xh = xs.reshape(b, l, heads, hd)
        y = sequential_scan(xh, dt, A, B[:, :, None], C[:, :, None]) + xh * scan.D.double()[:, None]
        y = y.reshape(b, l, d_in) * F.silu(z)
        y = y * torch.rsqrt(y.square().mean(-1, keepdim=True) + 1e-5) * scan.norm.weight.double()
        total = total + (y.flip(1) if direction else y)
    return x + total @ block.mamba.out_proj.weight.double().T


@pytest.mark.parametrize("directions", [1, 2])
def test_block_equals_step_by_step_reference(directions):
    torch.manual_seed(0)
    block = Mamba2Block(24, directions, d_state=8, headdim=6, chunk_size=5)
    with torch.no_grad():
        for name, p in block.named_parameters():  # leave the initial values: every tensor matters
            if not name.endswith(("A_log", "dt_bias")):
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 13, 24)
    with torch.no_grad():
        got = block(x)
    torch.testing.assert_close(got.double(), reference_block(block, x), atol=1e-5, rtol=1e-5)
    # the reverse scan sees the future: changing the last token changes the first output only when bidirectional
    x2 = x.clone()
    x2[:, -1] += 1
    with torch.no_grad():
        first_changed = (block(x2)[:, 0] - got[:, 0]).abs().max().item() > 1e-6
    assert first_changed == (directions == 2)


def test_block_parameter_names_are_the_official_ones():
    block = Mamba2Block(512)
    shapes = {k: tuple(v.shape) for k, v in block.state_dict().items()}
    assert shapes["mamba.in_proj.weight"] == (2576, 512)  # z 1024, xBC 1024 + 2·256, dt 16
    assert shapes["mamba.mamba_scans.1.conv1d.weight"] == (1536, 1, 4)
    assert shapes["mamba.mamba_scans.0.norm.weight"] == (1024,)
    assert shapes["mamba.out_proj.weight"] == (512, 1024)
    assert {k for k in shapes if "bias" in k} == {"mamba.mamba_scans.0.dt_bias", "mamba.mamba_scans.1.dt_bias",
                                                   "mamba.mamba_scans.0.conv1d.bias", "mamba.mamba_scans.1.conv1d.bias"}
