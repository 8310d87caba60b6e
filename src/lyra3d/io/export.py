"""Export Gaussians to the formats other tools read: 3DGS PLY, ``.splat``, USD and USDZ.

``export_gaussians(gaussians, path)`` picks the format from the file suffix:

- ``ply`` (``.ply``): the standard 3DGS PLY (:func:`lyra3d.core.gaussians.save_ply`); lossless, any SH degree.
- ``splat`` (``.splat``): the 32-byte-per-Gaussian layout common web viewers read: position and linear
  scale as float32, RGBA and the rotation as bytes; degree-0 colour only.
- ``usd`` (``.usd .usda .usdc``): OpenUSD (needs ``usd-core``, ``pip install lyra3d[usd]``): a
  ``UsdVol.ParticleField3DGaussianSplat`` prim, a ``UsdGeom.Points`` fallback, optional ``UsdGeom.Camera``s.
- ``usdz`` (``.usdz``): the same stage packaged as one USDZ archive.

``.spz`` (Niantic's compressed format) is not written: no well-kept package implements it (see
:data:`SPZ_UNSUPPORTED`).

USD axes. Our world is the input camera's OpenCV frame (x right, y down, z forward). USD scenes are
written Z-up by default (Isaac Sim's convention) with the fixed rotation ``X = x, Y = z, Z = -y``: a point
above the camera (``y < 0``) gets ``Z > 0`` and the camera's forward direction becomes ``+Y``. With
``up_axis="Y"`` the rotation is ``X = x, Y = -y, Z = -z`` (OpenGL-like). The rotation is applied to the
means, to the orientations and to the higher spherical-harmonic bands, recorded in the layer's
``customLayerData["lyra3d"]``, and undone by :func:`load_usd`. One scene unit is one metre.

USD layout (``/World`` is the default prim)::

    /World                      Xform
    /World/Gaussians            ParticleField3DGaussianSplat  purpose "render"
    /World/GaussiansPoints      Points (fallback)             purpose "proxy"
    /World/Cameras/cam_0000     Camera                        (when cameras are given)

The splat prim follows the schema (linear scales, opacities in [0, 1], SH coefficients per Gaussian in the
3DGS order). The Points fallback opens in any USD tool: ``points``, ``widths`` (twice the mean linear scale),
``displayColor`` and ``displayOpacity``, plus the raw parameters as primvars (``primvars:gs:logScales``,
``primvars:gs:orientations`` wxyz, ``primvars:gs:opacityLogits``, ``primvars:gs:sh`` with ``elementSize``
K, ``primvars:gs:times`` for dynamic scenes), so a round trip through it is lossless within float32. As USD
intends for a proxy/render pair, interactive viewers show the points and renderers the splats; pass
``points=False`` to write the splat prim alone (then with the default purpose).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lyra3d.core.cameras import Cameras
from lyra3d.core.files import atomic_path
from lyra3d.core.gaussians import SH_C0, Gaussians, checked, load_ply, save_ply
from lyra3d.errors import InputError

#: Formats :func:`export_gaussians` knows, and the suffixes that select them.
FORMATS = ("ply", "splat", "spz", "usd", "usdz")
SUFFIX_FORMATS = {".ply": "ply", ".splat": "splat", ".spz": "spz", ".usd": "usd", ".usda": "usd",
                  ".usdc": "usd", ".usdz": "usdz"}
SPZ_UNSUPPORTED = ("the .spz format is not supported: no well-kept Python package writes it; "
                   "export .ply or .splat instead (Niantic's spz tools convert a 3DGS .ply to .spz)")
#: Bytes per Gaussian in a ``.splat`` file.
SPLAT_RECORD_BYTES = 32
_SPLAT_DTYPE = np.dtype([("position", "<f4", (3,)), ("scale", "<f4", (3,)), ("rgba", "u1", (4,)),
                         ("rotation", "u1", (4,))])


assert _SPLAT_DTYPE.itemsize == SPLAT_RECORD_BYTES


#: OpenCV world (x right, y down, z forward) to USD world, per up axis: rows are the USD axes.
USD_AXIS_ROTATIONS = {
    "Z": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # X = x, Y = z, Z = -y
    "Y": ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0)),  # X = x, Y = -y, Z = -z
}
_USD_INSTALL = "pip install lyra3d[usd]"
_OPTIONS = {"ply": set(), "splat": set(), "usd": {"cameras", "up_axis", "points"},
            "usdz": {"cameras", "up_axis", "points"}}


# -- the entry point ------------------------------------------------------------------------------------------
def export_gaussians(gaussians: Gaussians | str | Path, path: str | Path, format: str | None = None,
                     **options: Any) -> Path:
    """Write Gaussians to ``path`` in ``format`` (default: from the suffix), atomically.

    Args:
        gaussians: a :class:`Gaussians` set, or the path of a 3DGS PLY to convert.
        path: the output file; its folder must exist.
        format: one of :data:`FORMATS`; ``None`` picks it from the suffix (:data:`SUFFIX_FORMATS`).
        **options: for ``usd``/``usdz`` only:

            - ``cameras``: :class:`Cameras`, a ``cameras.json`` path, or ``None`` (the default: the
              ``cameras.json`` beside an input PLY when ``gaussians`` is a path, else none); ``False`` for none.
              Written as ``UsdGeom.Camera`` prims.
            - ``up_axis``: ``"Z"`` (default, Isaac Sim) or ``"Y"``.
            - ``points``: also write the ``UsdGeom.Points`` fallback (default ``True``).

    Returns:
        ``path`` as a :class:`Path`.

    Raises:
        InputError: unknown format or option, missing/unwritable output folder, unreadable input PLY,
            non-finite values, a missing optional dependency.
    """
    path = Path(path)
    fmt = _resolve_format(path, format)
    unknown = set(options) - _OPTIONS[fmt]
    if unknown:
        valid = ", ".join(sorted(_OPTIONS[fmt])) or "none"
        raise InputError(f"unknown option(s) {', '.join(sorted(unknown))} for {fmt} export; valid: {valid}")
    source = None
    if isinstance(gaussians, (str, Path)):
        source = Path(gaussians)
        gaussians = load_ply(source)
    if not isinstance(gaussians, Gaussians):
        raise InputError(f"export_gaussians needs Gaussians or a PLY path, got {type(gaussians).__name__}")
    gaussians = gaussians.detach().to("cpu", torch.float32).validate()
    if fmt == "ply":
        return save_ply(gaussians, path)
    if fmt == "splat":
        return save_splat(gaussians, path)
    cameras = options.get("cameras")
    if cameras is None and source is not None and (source.parent / "cameras.json").is_file():
        cameras = source.parent / "cameras.json"
    return save_usd(gaussians, path, cameras=cameras or None, up_axis=options.get("up_axis", "Z"),
                    points=options.get("points", True), usdz=(fmt == "usdz"))


def _resolve_format(path: Path, format: str | None) -> str:
    if format is None:
        fmt = SUFFIX_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise InputError(f"cannot tell the export format from the suffix {path.suffix!r} of {path.name}; "
                             f"use one of {', '.join(sorted(SUFFIX_FORMATS))} or name the format (--format; Python: format=)")
    else:
        fmt = str(format).lower().lstrip(".")
        if fmt not in FORMATS:
            raise InputError(f"unknown export format {format!r}; choose from {', '.join(FORMATS)} (or simready, "
                             "a folder: lyra3d export --format simready)")
    if fmt == "spz":
        raise InputError(SPZ_UNSUPPORTED)
    return fmt


# -- .splat -----------------------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


def save_splat(gaussians: Gaussians, path: str | Path) -> Path:
    """Write the 32-byte-per-Gaussian ``.splat`` layout, atomically.

    Each record, little-endian: position ``3×float32``, linear scale ``3×float32``, colour ``4×uint8``
    (``255·(0.5 + C0·dc)`` clipped, alpha ``255·sigmoid(opacity)``), rotation ``4×uint8`` (the unit
    ``wxyz`` quaternion as ``q·128 + 128``, clipped). Records are sorted by descending importance
    (product of the linear scales × opacity), as web viewers expect. Higher SH bands and ``times`` are
    not stored (the format has no room for them).
    """
    path = Path(path)
    g = gaussians.detach().to("cpu", torch.float32)
    log_scales = g.scales.double().numpy()
    alpha = _sigmoid(g.opacities.double().numpy())
    # importance = exp(sum log-scales) * alpha, ranked in log space (no overflow)
    importance = log_scales.sum(1) + np.log(np.maximum(alpha, 1e-300))
    order = np.argsort(-importance, kind="stable")
    n = len(g)
    rec = np.zeros(n, dtype=_SPLAT_DTYPE)
    rec["position"] = g.means.numpy()[order]
    rec["scale"] = np.exp(log_scales[order]).astype(np.float32)
    rgb = 0.5 + SH_C0 * g.sh[:, 0].double().numpy()[order]
    rec["rgba"][:, :3] = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    rec["rgba"][:, 3] = np.clip(np.rint(alpha[order] * 255.0), 0, 255).astype(np.uint8)
    q = g.quats.double().numpy()[order]
    norm = np.linalg.norm(q, axis=1, keepdims=True)
    q = np.where(norm > 0, q / np.maximum(norm, 1e-300), np.array([1.0, 0.0, 0.0, 0.0]))
    rec["rotation"] = np.clip(np.rint(q * 128.0 + 128.0), 0, 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        rec.tofile(tmp)
    return path


def load_splat(path: str | Path) -> Gaussians:
    """Read a ``.splat`` file (see :func:`save_splat`) back into degree-0 :class:`Gaussians`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f".splat file not found: {path}")
    size = path.stat().st_size
    if size % SPLAT_RECORD_BYTES:
        raise InputError(f"{path} is not a .splat file: its size {size} is not a multiple of "
                         f"{SPLAT_RECORD_BYTES} bytes")
    rec = np.fromfile(path, dtype=_SPLAT_DTYPE)
    rgba = rec["rgba"].astype(np.float32) / 255.0
    alpha = np.clip(rgba[:, 3], 0.5 / 255.0, 1.0 - 0.5 / 255.0)
    q = (rec["rotation"].astype(np.float32) - 128.0) / 128.0
    q = torch.nn.functional.normalize(torch.from_numpy(q), dim=-1)
    dc = (torch.from_numpy(rgba[:, :3]) - 0.5) / SH_C0
    with np.errstate(divide="ignore"):
        scales = np.log(np.maximum(rec["scale"].astype(np.float32), np.float32(1e-30)))
    return checked(Gaussians(means=torch.from_numpy(rec["position"].astype(np.float32)),
                             scales=torch.from_numpy(scales),
                             quats=q.contiguous(),
                             opacities=torch.from_numpy(np.log(alpha) - np.log1p(-alpha)).float(),
                             sh=dc[:, None, :].contiguous()), path)


def rotate_gaussians(gaussians: Gaussians, rotation: torch.Tensor | np.ndarray) -> Gaussians:
    """Rotate means, orientations and SH colours by a ``(3, 3)`` rotation about the origin (in float64)."""
    m = torch.eye(4, dtype=torch.float64)
    m[:3, :3] = torch.as_tensor(np.asarray(rotation, dtype=np.float64))
    return gaussians.to(dtype=torch.float64).transform(m).to(dtype=gaussians.means.dtype)


# -- USD ----------------------------------------------------------------------------------------------------------
def _pxr():
    """Import usd-core lazily; one-line errors when it is missing or too old."""
    try:
        from pxr import Gf, Sdf, Usd, UsdGeom, UsdUtils, UsdVol, Vt
    except ImportError:
        raise InputError(f"USD export needs usd-core, which is not installed: {_USD_INSTALL}") from None
    if not hasattr(UsdVol, "ParticleField3DGaussianSplat"):
        raise InputError(f"usd-core {'.'.join(map(str, Usd.GetVersion()))} lacks "
                         "UsdVol.ParticleField3DGaussianSplat (OpenUSD >= 26.03): pip install -U usd-core")
    return Gf, Sdf, Usd, UsdGeom, UsdUtils, UsdVol, Vt


def _as_cameras(cameras: Cameras | str | Path | None) -> Cameras | None:
    if cameras is None or isinstance(cameras, Cameras):
        return cameras
    if isinstance(cameras, (str, Path)):
        return Cameras.load_json(cameras)
    raise InputError(f"cameras must be Cameras or a cameras.json path, got {type(cameras).__name__}")


def save_usd(gaussians: Gaussians, path: str | Path, cameras: Cameras | str | Path | None = None,
             up_axis: str = "Z", points: bool = True, usdz: bool | None = None) -> Path:
    """Write Gaussians (and optionally cameras) as a USD stage (see the module notes), atomically.

    ``usdz`` defaults to ``path`` ending in ``.usdz``; ``.usda`` writes text, ``.usd``/``.usdc`` binary.
    """
    Gf, Sdf, Usd, UsdGeom, UsdUtils, UsdVol, Vt = _pxr()
    path = Path(path)
    up = str(up_axis).upper()
    if up not in USD_AXIS_ROTATIONS:
        raise InputError(f"up_axis must be 'Z' or 'Y', got {up_axis!r}")
    usdz = path.suffix.lower() == ".usdz" if usdz is None else usdz
    cams = _as_cameras(cameras)
    rot = np.array(USD_AXIS_ROTATIONS[up], dtype=np.float64)
    g = rotate_gaussians(gaussians.detach().to("cpu", torch.float32), rot)

    stage = Usd.Stage.CreateInMemory()
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z if up == "Z" else UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    world = UsdGeom.Xform.Define(stage, "/World")
    stage.SetDefaultPrim(world.GetPrim())
    stage.GetRootLayer().customLayerData = {"lyra3d": {
        "sourceConvention": "opencv (x right, y down, z forward)",
        "opencvToUsd": Gf.Matrix3d(*rot.reshape(-1).tolist()),
        "shDegree": g.sh_degree}}

    n, k = len(g), g.sh.shape[1]
    means = g.means.numpy().astype(np.float32)
    lin_scales = torch.exp(g.scales).numpy().astype(np.float32)
    alpha = torch.sigmoid(g.opacities).numpy().astype(np.float32)
    quats_xyzw = np.ascontiguousarray(np.roll(g.quats.numpy(), -1, axis=1), dtype=np.float32)
    rgb = np.clip(g.rgb.numpy(), 0.0, 1.0).astype(np.float32)
    reach = 3.0 * lin_scales.max(1, keepdims=True) if n else np.zeros((0, 1), np.float32)
    extent = (Vt.Vec3fArray.FromNumpy(np.stack([(means - reach).min(0), (means + reach).max(0)]).astype(np.float32))
              if n else Vt.Vec3fArray([Gf.Vec3f(0.0), Gf.Vec3f(0.0)]))

    splat = UsdVol.ParticleField3DGaussianSplat.Define(stage, "/World/Gaussians")
    splat.CreatePositionsAttr(Vt.Vec3fArray.FromNumpy(means))
    splat.CreateOrientationsAttr(Vt.QuatfArray.FromNumpy(quats_xyzw))
    splat.CreateScalesAttr(Vt.Vec3fArray.FromNumpy(lin_scales))
    splat.CreateOpacitiesAttr(Vt.FloatArray.FromNumpy(alpha))
    splat.CreateRadianceSphericalHarmonicsDegreeAttr(g.sh_degree)
    splat.CreateRadianceSphericalHarmonicsCoefficientsAttr(
        Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(g.sh.numpy().reshape(n * k, 3), dtype=np.float32)))
    splat.CreateExtentAttr(extent)

    if points:
        pts = UsdGeom.Points.Define(stage, "/World/GaussiansPoints")
        pts.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(means))
        pts.CreateWidthsAttr(Vt.FloatArray.FromNumpy((2.0 * lin_scales.mean(1)).astype(np.float32)))
        pts.SetWidthsInterpolation(UsdGeom.Tokens.vertex)
        pts.CreateExtentAttr(extent)
        pts.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex).Set(Vt.Vec3fArray.FromNumpy(rgb))
        pts.CreateDisplayOpacityPrimvar(UsdGeom.Tokens.vertex).Set(Vt.FloatArray.FromNumpy(alpha))
        api = UsdGeom.PrimvarsAPI(pts)
        tn = Sdf.ValueTypeNames
        api.CreatePrimvar("gs:logScales", tn.Float3Array, UsdGeom.Tokens.vertex).Set(
            Vt.Vec3fArray.FromNumpy(g.scales.numpy().astype(np.float32)))
        api.CreatePrimvar("gs:orientations", tn.QuatfArray, UsdGeom.Tokens.vertex).Set(
            Vt.QuatfArray.FromNumpy(quats_xyzw))
        api.CreatePrimvar("gs:opacityLogits", tn.FloatArray, UsdGeom.Tokens.vertex).Set(
            Vt.FloatArray.FromNumpy(g.opacities.numpy().astype(np.float32)))
        api.CreatePrimvar("gs:sh", tn.Float3Array, UsdGeom.Tokens.vertex, k).Set(
            Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(g.sh.numpy().reshape(n * k, 3), dtype=np.float32)))
        if g.times is not None:
            api.CreatePrimvar("gs:times", tn.FloatArray, UsdGeom.Tokens.vertex).Set(
                Vt.FloatArray.FromNumpy(g.times.numpy().astype(np.float32)))
        pts.CreatePurposeAttr(UsdGeom.Tokens.proxy)
        splat.CreatePurposeAttr(UsdGeom.Tokens.render)
        splat.SetProxyPrim(pts.GetPrim())

    if cams is not None and len(cams):
        _write_cameras(stage, cams, rot)

    with atomic_path(path) as tmp:
        if usdz:
            with tempfile.TemporaryDirectory(prefix="lyra3d-usdz-") as tmpdir:
                inner = Path(tmpdir) / f"{path.stem or 'scene'}.usdc"
                stage.GetRootLayer().Export(str(inner))
                if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(inner)), str(tmp)):
                    raise InputError(f"usd-core could not package {path.name} as USDZ")
        else:
            if not stage.GetRootLayer().Export(str(tmp)):
                raise InputError(f"usd-core could not write {path}")
    return path


def _write_cameras(stage, cams: Cameras, rot: np.ndarray) -> None:
    """``UsdGeom.Camera`` prims for every camera: pose converted to USD axes, pinhole from the intrinsics."""
    from pxr import Gf, UsdGeom

    UsdGeom.Scope.Define(stage, "/World/Cameras")
    conv = np.eye(4)
    conv[:3, :3] = rot
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> USD camera axes (y up, looking down -z)
    c2w = cams.camera_to_world.detach().double().cpu().numpy()
    k = cams.intrinsics.detach().double().cpu().numpy()
    w, h = cams.width, cams.height
    h_ap = 36.0  # a 36 mm wide film back; only the ratios to the focal length matter
    for i in range(len(cams)):
        cam = UsdGeom.Camera.Define(stage, f"/World/Cameras/cam_{i:04d}")
        m = conv @ c2w[i] @ flip
        cam.AddTransformOp().Set(Gf.Matrix4d(m.T.tolist()))  # USD matrices act on row vectors
        fx, fy, cx, cy = k[i]
        focal = fx / w * h_ap
        v_ap = h * focal / fy
        cam.CreateProjectionAttr(UsdGeom.Tokens.perspective)
        cam.CreateFocalLengthAttr(float(focal))
        cam.CreateHorizontalApertureAttr(float(h_ap))
        cam.CreateVerticalApertureAttr(float(v_ap))
        cam.CreateHorizontalApertureOffsetAttr(float((w / 2 - cx) * h_ap / w))
        cam.CreateVerticalApertureOffsetAttr(float((cy - h / 2) * v_ap / h))
        cam.CreateClippingRangeAttr(Gf.Vec2f(0.01, 10000.0))


def _usd_rotation(stage) -> np.ndarray:
    """The OpenCV-to-USD rotation a lyra3d stage was written with (from its metadata, else its up axis)."""
    from pxr import UsdGeom

    data = stage.GetRootLayer().customLayerData.get("lyra3d", {})
    if "opencvToUsd" in data:
        return np.array(data["opencvToUsd"], dtype=np.float64).reshape(3, 3)
    return np.array(USD_AXIS_ROTATIONS["Z" if UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z else "Y"])


def load_usd(path: str | Path, source: str = "auto") -> Gaussians:
    """Read Gaussians from a USD/USDZ stage written by :func:`save_usd` (or any 3DGS splat prim).

    Args:
        path: the ``.usd``/``.usda``/``.usdc``/``.usdz`` file.
        source: ``"points"`` (the lossless fallback primvars), ``"splat"`` (the first
            ``ParticleField3DGaussianSplat``), or ``"auto"`` (points when present, else splat).

    Returns:
        Gaussians in our OpenCV world frame (the axis conversion undone).
    """
    Gf, Sdf, Usd, UsdGeom, UsdUtils, UsdVol, Vt = _pxr()
    path = Path(path)
    if not path.is_file():
        raise InputError(f"USD file not found: {path}")
    if source not in ("auto", "points", "splat"):
        raise InputError(f"source must be 'auto', 'points' or 'splat', got {source!r}")
    try:
        stage = Usd.Stage.Open(str(path))
    except Exception as e:  # pxr raises Tf.ErrorException
        raise InputError(f"{path} is not a readable USD file ({str(e).strip().splitlines()[-1]})") from None
    if stage is None:
        raise InputError(f"{path} is not a readable USD file")
    splat_prim = points_prim = None
    for prim in stage.TraverseAll():
        if splat_prim is None and prim.IsA(UsdVol.ParticleField3DGaussianSplat):
            splat_prim = prim
        if points_prim is None and prim.IsA(UsdGeom.Points) and prim.HasAttribute("primvars:gs:sh"):
            points_prim = prim
    use_points = points_prim is not None and source in ("auto", "points")
    if source == "points" and points_prim is None:
        raise InputError(f"{path} has no lyra3d Points fallback (primvars:gs:*); use source='splat'")
    if not use_points and splat_prim is None:
        raise InputError(f"{path} holds no ParticleField3DGaussianSplat prim nor lyra3d Points fallback")

    def arr(attr, dtype=np.float32) -> np.ndarray:
        value = attr.Get() if attr and attr.IsValid() else None
        return np.array(value, dtype=dtype) if value is not None else None

    if use_points:
        p = points_prim
        means = arr(p.GetAttribute("points"))
        n = len(means)
        log_scales = arr(p.GetAttribute("primvars:gs:logScales"))
        quats = np.roll(arr(p.GetAttribute("primvars:gs:orientations")), 1, axis=1)
        logits = arr(p.GetAttribute("primvars:gs:opacityLogits"))
        sh = arr(p.GetAttribute("primvars:gs:sh")).reshape(n, -1, 3)
        times = arr(p.GetAttribute("primvars:gs:times")) if p.HasAttribute("primvars:gs:times") else None
    else:
        s = UsdVol.ParticleField3DGaussianSplat(splat_prim)
        means = arr(s.GetPositionsAttr())
        if means is None:
            raise InputError(f"{path}: the splat prim {splat_prim.GetPath()} has no positions")
        n = len(means)
        scales = arr(s.GetScalesAttr())
        log_scales = np.log(np.maximum(scales, 1e-30)) if scales is not None else np.zeros((n, 3), np.float32)
        q = arr(s.GetOrientationsAttr())
        quats = np.roll(q, 1, axis=1) if q is not None else np.tile(np.float32([1, 0, 0, 0]), (n, 1))
        a = arr(s.GetOpacitiesAttr())
        a = np.clip(a if a is not None else np.ones(n, np.float32), 1e-6, 1 - 1e-6).astype(np.float64)
        logits = (np.log(a) - np.log1p(-a)).astype(np.float32)
        degree = s.GetRadianceSphericalHarmonicsDegreeAttr().Get()
        coeffs = arr(s.GetRadianceSphericalHarmonicsCoefficientsAttr())
        kk = (int(degree) + 1) ** 2
        if coeffs is None or len(coeffs) < n * kk:
            sh = np.zeros((n, 1, 3), np.float32)  # the schema's default: colour 0.5
        else:
            sh = coeffs[: n * kk].reshape(n, kk, 3)
        times = None
    g = Gaussians(torch.from_numpy(means), torch.from_numpy(np.ascontiguousarray(log_scales)),
                  torch.from_numpy(np.ascontiguousarray(quats)), torch.from_numpy(logits),
                  torch.from_numpy(np.ascontiguousarray(sh)),
                  torch.from_numpy(times) if times is not None else None)
    return checked(rotate_gaussians(g, _usd_rotation(stage).T), path)
