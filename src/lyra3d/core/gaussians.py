"""3D Gaussians: the scene representation, and the standard 3DGS PLY on disk.

Conventions (docs/design.md §2): ``means (N, 3)``, ``scales (N, 3)`` as log-scales, ``quats (N, 4)`` in ``wxyz``,
``opacities (N,)`` as logits, ``sh (N, K, 3)`` spherical-harmonic colour coefficients with
``K = (degree + 1)²``, optional ``times (N,)`` for dynamic scenes. These are exactly the quantities the
INRIA 3DGS PLY stores (``x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3``), so files written
here open in the common 3DGS viewers, and files from them load here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from lyra3d.core.files import atomic_path
from lyra3d.errors import InputError

SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))
_SH_C1 = 0.4886025119029199
_SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_SH_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154, -0.4570457994644658,
          1.445305721320277, -0.5900435899266435)


def sh_basis(dirs: Tensor, degree: int) -> Tensor:
    """Real SH basis ``(N, (degree+1)²)`` at unit directions ``dirs (N, 3)`` (INRIA 3DGS order and signs)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, SH_C0)]
    if degree >= 1:
        out += [-_SH_C1 * y, _SH_C1 * z, -_SH_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [_SH_C2[0] * x * y, _SH_C2[1] * y * z, _SH_C2[2] * (2 * zz - xx - yy), _SH_C2[3] * x * z,
                _SH_C2[4] * (xx - yy)]
    if degree >= 3:
        out += [_SH_C3[0] * y * (3 * xx - yy), _SH_C3[1] * x * y * z, _SH_C3[2] * y * (4 * zz - xx - yy),
                _SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), _SH_C3[4] * x * (4 * zz - xx - yy),
                _SH_C3[5] * z * (xx - yy), _SH_C3[6] * x * (xx - 3 * yy)]
    return torch.stack(out, -1)


def rotate_sh(sh: Tensor, rotation: Tensor) -> Tensor:
    """SH coefficients ``(N, K, 3)`` of the same colours after the scene is rotated by ``rotation (3, 3)``.

    Each band ``l`` transforms by its own ``(2l+1)²`` matrix, fitted here by least squares on sample
    directions in float64 (exact to rounding, since a rotation maps a band onto itself). Degree 0 is unchanged.
    """
    degree = sh_degree_of(sh.shape[1])
    if degree == 0:
        return sh
    r = rotation.detach().to("cpu", torch.float64)
    d = torch.nn.functional.normalize(torch.randn(64, 3, generator=torch.Generator().manual_seed(0),
                                                  dtype=torch.float64), dim=-1)
    y, y_rot = sh_basis(d, degree), sh_basis(d @ r.T, degree)
    out = sh.clone()
    for band in range(1, degree + 1):
        s = slice(band * band, (band + 1) ** 2)
        # y_rot[:, s] = y[:, s] @ m.T; the colours are kept when the new coefficients are inv(m.T) @ c
        m_t = torch.linalg.lstsq(y[:, s], y_rot[:, s]).solution
        out[:, s] = torch.einsum("ij,njc->nic", torch.linalg.inv(m_t).to(sh), sh[:, s])
    return out


def sh_to_rgb(sh_dc: Tensor) -> Tensor:
    """Colour of the degree-0 SH coefficient (view-independent), as 3DGS defines it: ``0.5 + C0·dc``."""
    return sh_dc * SH_C0 + 0.5


def rgb_to_sh(rgb: Tensor) -> Tensor:
    """Degree-0 SH coefficient of a colour (inverse of :func:`sh_to_rgb`)."""
    return (rgb - 0.5) / SH_C0


def sh_degree_of(k: int) -> int:
    degree = int(round(math.sqrt(k))) - 1
    if (degree + 1) ** 2 != k or not 0 <= degree <= 3:
        raise InputError(f"{k} SH coefficients per channel is not (degree+1)^2 for a degree in 0..3")
    return degree


@dataclass
class Gaussians:
    """A set of ``N`` 3D Gaussians (docs/design.md §2). All tensors share one device and dtype."""

    means: Tensor  # (N, 3)
    scales: Tensor  # (N, 3) log-scales
    quats: Tensor  # (N, 4) wxyz, not necessarily normalised
    opacities: Tensor  # (N,) logits
    sh: Tensor  # (N, K, 3)
    times: Tensor | None = None  # (N,) for dynamic scenes

    def __post_init__(self) -> None:
        n = self.means.shape[0]
        expect = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,)}
        for name, shape in expect.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise InputError(f"Gaussians.{name} must have shape {shape}, got {got}")
        if self.sh.ndim != 3 or self.sh.shape[0] != n or self.sh.shape[2] != 3:
            raise InputError(f"Gaussians.sh must have shape ({n}, K, 3), got {tuple(self.sh.shape)}")
        sh_degree_of(self.sh.shape[1])
        if self.times is not None and tuple(self.times.shape) != (n,):
            raise InputError(f"Gaussians.times must have shape ({n},), got {tuple(self.times.shape)}")

    # -- construction -----------------------------------------------------------------------------------
    @classmethod
    def from_activated(cls, means: Tensor, scales: Tensor, quats: Tensor, opacities: Tensor, rgb: Tensor,
                       times: Tensor | None = None) -> "Gaussians":
        """From linear scales, opacities in (0, 1) and RGB colours in [0, 1] (degree-0 SH)."""
        eps = 1e-6
        op = opacities.clamp(eps, 1 - eps)
        return cls(means, torch.log(scales.clamp_min(1e-12)), quats, torch.log(op) - torch.log1p(-op),
                   rgb_to_sh(rgb)[:, None, :], times)

    # -- properties ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.means.shape[0]

    @property
    def sh_degree(self) -> int:
        return sh_degree_of(self.sh.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def linear_scales(self) -> Tensor:
        return torch.exp(self.scales)

    @property
    def alpha(self) -> Tensor:
        """Opacities in (0, 1)."""
        return torch.sigmoid(self.opacities)

    @property
    def rgb(self) -> Tensor:
        """View-independent colour ``(N, 3)`` from the degree-0 coefficient (unclamped)."""
        return sh_to_rgb(self.sh[:, 0])

    def _tensors(self) -> dict[str, Tensor | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> "Gaussians":
        """Apply ``fn`` to every tensor (``None`` stays ``None``)."""
        return Gaussians(**{k: (fn(v) if v is not None else None) for k, v in self._tensors().items()})

    def to(self, device=None, dtype=None) -> "Gaussians":
        return self.map(lambda t: t.to(device, dtype))

    def detach(self) -> "Gaussians":
        return self.map(Tensor.detach)

    def __getitem__(self, index) -> "Gaussians":
        """Select Gaussians by a boolean mask, an index tensor or a slice."""
        return self.map(lambda t: t[index])

    # -- checks and edits ---------------------------------------------------------------------------------
    def validate(self) -> "Gaussians":
        """Raise :class:`InputError` if any value is NaN or infinite; return self."""
        for name, t in self._tensors().items():
            if t is not None and not torch.isfinite(t).all():
                bad = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(-1).sum())
                raise InputError(f"{bad} Gaussians have NaN or infinite {name}; remove them "
                                 "(e.g. Gaussians[mask]) or fix the producer")
        return self

    def prune_by_opacity(self, min_opacity: float | None = None, keep_fraction: float | None = None,
                         random_fraction: float = 0.0, generator: torch.Generator | None = None) -> "Gaussians":
        """Drop faint Gaussians.

        Args:
            min_opacity: drop Gaussians whose opacity (0..1) is below this.
            keep_fraction: keep this fraction, the most opaque first (docs/design.md §4 opacity-rank pruning) ...
            random_fraction: ... plus this fraction of the rest drawn at random.
        """
        keep = torch.ones(len(self), dtype=torch.bool, device=self.device)
        if min_opacity is not None:
            keep &= self.alpha >= min_opacity
        if keep_fraction is not None:
            if not 0.0 <= keep_fraction <= 1.0:
                raise InputError(f"keep_fraction must be in [0, 1], got {keep_fraction}")
            order = torch.argsort(self.opacities.detach(), descending=True)
            top = torch.zeros_like(keep)
            top[order[: int(round(keep_fraction * len(self)))]] = True
            if random_fraction > 0:
                rest = order[int(round(keep_fraction * len(self))):]
                pick = torch.rand(rest.shape[0], generator=generator).to(self.device) < random_fraction
                top[rest[pick]] = True
            keep &= top
        return self[keep]

    def transform(self, matrix: Tensor, scale: float = 1.0) -> "Gaussians":
        """Apply a rigid transform (``(4, 4)``, rotation + translation) and an optional uniform scale.

        Rotates means, orientations and the view-dependent SH bands, so the scene looks the same from the
        transformed cameras.
        """
        r, t = matrix[:3, :3].to(self.means), matrix[:3, 3].to(self.means)
        q = rotmat_to_quat(r)
        return replace(self, means=scale * self.means @ r.T + t, quats=quat_multiply(q.expand_as(self.quats), self.quats),
                       scales=self.scales + math.log(scale), sh=rotate_sh(self.sh, matrix[:3, :3]))

    @staticmethod
    def cat(parts: Sequence["Gaussians"]) -> "Gaussians":
        """Concatenate sets; SH is zero-padded to the highest degree present."""
        if not parts:
            raise InputError("nothing to concatenate")
        k = max(p.sh.shape[1] for p in parts)
        sh = [torch.nn.functional.pad(p.sh, (0, 0, 0, k - p.sh.shape[1])) for p in parts]
        has_t = [p.times is not None for p in parts]
        if any(has_t) and not all(has_t):
            raise InputError("cannot concatenate static and dynamic Gaussians (times missing on some)")
        return Gaussians(torch.cat([p.means for p in parts]), torch.cat([p.scales for p in parts]),
                         torch.cat([p.quats for p in parts]), torch.cat([p.opacities for p in parts]),
                         torch.cat(sh), torch.cat([p.times for p in parts]) if all(has_t) else None)


# -- quaternions ----------------------------------------------------------------------------------------------
def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product of ``wxyz`` quaternions ``(..., 4)``."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([aw * bw - ax * bx - ay * by - az * bz,
                        aw * bx + ax * bw + ay * bz - az * by,
                        aw * by - ax * bz + ay * bw + az * bx,
                        aw * bz + ax * by - ay * bx + az * bw], -1)


def quat_to_rotmat(q: Tensor) -> Tensor:
    """``(..., 4)`` wxyz quaternions (normalised here) to ``(..., 3, 3)`` rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(q, dim=-1).unbind(-1)
    return torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(
        *q.shape[:-1], 3, 3)


def rotmat_to_quat(r: Tensor) -> Tensor:
    """Rotation matrices ``(..., 3, 3)`` to unit ``wxyz`` quaternions ``(..., 4)`` (Shepperd's method: of the
    four formulas, the one whose component is largest, so it is stable everywhere). Computed in float64,
    returned in ``r``'s dtype."""
    m = r.double().reshape(-1, 3, 3)
    tr = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    cands = torch.stack([
        torch.stack([1 + tr, m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], 1 + m[:, 0, 0] - m[:, 1, 1] - m[:, 2, 2], m[:, 0, 1] + m[:, 1, 0],
                     m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], 1 - m[:, 0, 0] + m[:, 1, 1] - m[:, 2, 2],
                     m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1],
                     1 - m[:, 0, 0] - m[:, 1, 1] + m[:, 2, 2]], -1),
    ], 1)  # (N, 4 candidates, 4): each is 4·q·(its own largest component)
    pick = torch.stack([tr, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], -1).argmax(-1)
    q = torch.nn.functional.normalize(cands[torch.arange(len(m)), pick], dim=-1)
    return q.reshape(*r.shape[:-2], 4).to(r.dtype)


# -- PLY -------------------------------------------------------------------------------------------------
def ply_property_names(sh_degree: int) -> list[str]:
    """The standard 3DGS PLY vertex properties, in the INRIA order."""
    k = (sh_degree + 1) ** 2
    return (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
            + [f"f_rest_{i}" for i in range(3 * (k - 1))]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])


def save_ply(gaussians: Gaussians, path: str | Path) -> Path:
    """Write the standard 3DGS PLY (binary little-endian, float32), atomically.

    ``f_rest_*`` is stored channel-major (all R coefficients, then G, then B) as the INRIA code does.
    Dynamic Gaussians get one extra property ``t`` after the standard ones (ignored by viewers).
    """
    from plyfile import PlyData, PlyElement

    path = Path(path)
    g = gaussians.detach().to("cpu", torch.float32)
    n, k = len(g), g.sh.shape[1]
    names = ply_property_names(g.sh_degree) + (["t"] if g.times is not None else [])
    cols = [g.means.numpy(), np.zeros((n, 3), np.float32), g.sh[:, 0].numpy(),
            g.sh[:, 1:].permute(0, 2, 1).reshape(n, 3 * (k - 1)).numpy(),
            g.opacities[:, None].numpy(), g.scales.numpy(), g.quats.numpy()]
    if g.times is not None:
        cols.append(g.times[:, None].numpy())
    data = np.concatenate(cols, axis=1).astype(np.float32)
    vertex = np.empty(n, dtype=[(name, "<f4") for name in names])
    for i, name in enumerate(names):
        vertex[name] = data[:, i]
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(vertex, "vertex")], byte_order="<").write(str(tmp))
    return path


def load_ply(path: str | Path) -> Gaussians:
    """Read a 3DGS PLY (any SH degree 0..3) written by lyra3d or any 3DGS trainer."""
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    if not path.is_file():
        from lyra3d.core.files import not_found

        raise InputError(not_found(path, "PLY file"))
    try:
        ply = PlyData.read(str(path))
    except (PlyParseError, ValueError, EOFError, OSError, IndexError, KeyError, UnicodeDecodeError) as e:
        raise InputError(f"{path} is not a readable PLY file ({type(e).__name__}: {e})") from None
    if "vertex" not in ply:
        raise InputError(f"{path} has no 'vertex' element, so it holds no Gaussians")
    v = ply["vertex"].data
    have = set(v.dtype.names)
    base = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"]
    missing = [p for p in base if p not in have]
    if missing:
        raise InputError(f"{path} is not a 3DGS PLY: missing properties {', '.join(missing)} "
                         "(a mesh or point cloud? lyra3d reads Gaussian-splat PLYs)")
    n_rest = sum(1 for name in have if name.startswith("f_rest_"))
    if n_rest % 3:
        raise InputError(f"{path} has {n_rest} f_rest_* properties; expected a multiple of 3")
    k = n_rest // 3 + 1
    sh_degree_of(k)

    def col(names: list[str]) -> Tensor:
        return torch.from_numpy(np.stack([np.asarray(v[name], dtype=np.float32) for name in names], axis=1))

    n = len(v)
    rest = col([f"f_rest_{i}" for i in range(n_rest)]) if n_rest else torch.zeros(n, 0)
    sh = torch.cat([col(["f_dc_0", "f_dc_1", "f_dc_2"])[:, None],
                    rest.reshape(n, 3, k - 1).permute(0, 2, 1)], dim=1)
    return checked(Gaussians(means=col(["x", "y", "z"]), scales=col(["scale_0", "scale_1", "scale_2"]),
                             quats=col(["rot_0", "rot_1", "rot_2", "rot_3"]), opacities=col(["opacity"])[:, 0],
                             sh=sh.contiguous(), times=col(["t"])[:, 0] if "t" in have else None), path)


def checked(gaussians: Gaussians, path: str | Path) -> Gaussians:
    """The one set of checks of every reader of Gaussians (PLY, .splat, USD), so that every command that reads a
    scene refuses the same files: at least one Gaussian, every value finite (:meth:`Gaussians.validate`)."""
    if len(gaussians) == 0:
        raise InputError(f"{path} holds no Gaussians (0 vertices); give a scene with at least one")
    try:
        return gaussians.validate()
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
