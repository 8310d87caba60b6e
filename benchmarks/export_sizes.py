"""File size (and write time) per export format for a synthetic 200k-Gaussian scene, SH degree 0 and 3.

    python benchmarks/export_sizes.py [--n 200000] [--out DIR]

USD rows need usd-core (``pip install lyra3d[usd]``) and are skipped without it. ``usd (splat only)`` is the
USD stage without the ``UsdGeom.Points`` fallback (``points=False``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from lyra3d.core.gaussians import Gaussians
from lyra3d.io.export import export_gaussians

ROWS = [  # label, file name, options
    ("ply", "scene.ply", {}),
    ("splat", "scene.splat", {}),
    ("usd (usdc)", "scene.usd", {}),
    ("usd (splat only)", "scene_splat_only.usd", {"points": False}),
    ("usdz", "scene.usdz", {}),
]


def scene(n: int, degree: int, seed: int = 0) -> Gaussians:
    g = torch.Generator().manual_seed(seed)
    return Gaussians(means=torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 3.0]),
                     scales=torch.randn(n, 3, generator=g) * 0.3 - 4.0,
                     quats=torch.randn(n, 4, generator=g),
                     opacities=torch.randn(n, generator=g),
                     sh=torch.randn(n, (degree + 1) ** 2, 3, generator=g) * 0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="number of Gaussians")
    parser.add_argument("--out", type=Path, default=None, help="keep the files in this folder")
    args = parser.parse_args()
    try:
        import pxr  # noqa: F401
        have_usd = True
    except ImportError:
        have_usd = False

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        results: dict[tuple[str, int], tuple[int, float]] = {}
        for degree in (0, 3):
            g = scene(args.n, degree)
            for label, name, options in ROWS:
                if label.startswith("usd") and not have_usd:
                    continue
                path = root / f"sh{degree}_{name}"
                start = time.perf_counter()
                export_gaussians(g, path, **options)
                results[(label, degree)] = (path.stat().st_size, time.perf_counter() - start)

    print(f"Export sizes for {args.n:,} Gaussians (MB = 10^6 bytes; B/G = bytes per Gaussian; write time)")
    print("| format           |  SH 0 size |   B/G |   time |  SH 3 size |   B/G |   time |")
    print(f"|{'-' * 18}|{'-' * 12}|{'-' * 7}|{'-' * 8}|{'-' * 12}|{'-' * 7}|{'-' * 8}|")
    for label, _, _ in ROWS:
        cells = []
        for degree in (0, 3):
            if (label, degree) not in results:
                cells += ["n/a", "", ""]
                continue
            size, secs = results[(label, degree)]
            cells += [f"{size / 1e6:.1f} MB", f"{size / args.n:.0f}", f"{secs:.2f}s"]
        print(f"| {label:<17}| {cells[0]:>10} | {cells[1]:>5} | {cells[2]:>6} | {cells[3]:>10} | {cells[4]:>5} | "
              f"{cells[5]:>6} |")
    if not have_usd:
        print("(USD rows skipped: usd-core is not installed; pip install lyra3d[usd])")
    print("spz: not supported (no well-kept package writes it)")


if __name__ == "__main__":
    main()
