"""GPU: lyra3d's PyTorch SSD against mamba-ssm's Triton kernel on the same inputs, and the Lyra-1 decoder through
either (needs CUDA and an importable mamba-ssm; with a pure-Python mamba-ssm build, a stand-in for its compiled
Mamba-1 module ``selective_scan_cuda`` must be in place, as benchmarks/lyra1_decoder.py installs)."""

import os

import pytest
import torch

from lyra3d.models import mamba2
from lyra3d.models.mamba2 import Mamba2Block, ssd_chunked, ssd_scan

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(not mamba2.kernels_available(), reason="needs mamba-ssm's Triton kernels (mamba-ssm, triton)"),
]


@pytest.mark.parametrize("length", [37, 1000, 5000])
def test_pytorch_ssd_equals_the_kernel(length):
    gen = torch.Generator().manual_seed(length)
    b, h, p, g, n = 2, 8, 64, 1, 128
    x = torch.randn(b, length, h, p, generator=gen).cuda()
    dt = (torch.rand(b, length, h, generator=gen) * 0.1).cuda()
    A = -(torch.rand(h, generator=gen) * 15 + 1).cuda()
    B, C = (torch.randn(b, length, g, n, generator=gen).cuda() for _ in range(2))
    D = torch.randn(h, generator=gen).cuda()
    kernel = ssd_scan(x, dt, A, B, C, D, 256, use_kernels=True)
    ours = ssd_chunked(x, dt, A, B, C, 256) + x * D[:, None]
    torch.testing.assert_close(ours, kernel, atol=2e-3, rtol=2e-3)  # the kernel's dot products may use TF32


def test_block_the_same_through_either_path():
    torch.manual_seed(0)
    block = Mamba2Block(256, d_state=64, headdim=32).cuda()
    x = torch.randn(2, 3000, 256, device="cuda")
    with torch.no_grad():
        os.environ["LYRA3D_MAMBA_KERNELS"] = "0"
        try:
            slow = block(x)
        finally:
            os.environ.pop("LYRA3D_MAMBA_KERNELS")
        fast = block(x)
    torch.testing.assert_close(slow, fast, atol=2e-3, rtol=2e-3)
