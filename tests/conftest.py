import pytest
import torch

from lyra3d.core.gaussians import Gaussians


def random_gaussians(n: int, sh_degree: int = 0, seed: int = 0, dynamic: bool = False) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(
        means=torch.randn(n, 3, generator=g),
        scales=torch.randn(n, 3, generator=g) - 3,
        quats=torch.randn(n, 4, generator=g),
        opacities=torch.randn(n, generator=g),
        sh=torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g),
        times=torch.rand(n, generator=g) if dynamic else None,
    )


@pytest.fixture
def make_gaussians():
    return random_gaussians
