"""Exact renders of a procedural world by analytic ray casting in torch: colour, z-depth, normals and
object ids at any camera and time (one ray per pixel centre, textures box-filtered over the pixel's
footprint, soft shadows from the one light), and the scene's centre depth."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from lyra3d.core.cameras import Cameras, default_camera, pixel_rays
from lyra3d.data.worlds.scene import PALETTE, SKY_DEPTH, Material, Object3D, Plane, Vec, World, WorldRender
from lyra3d.errors import InputError

_EPS = 1e-4  # smallest accepted ray parameter (metres)
_GROUND_EXTENT = 80.0  # radius of the ground disc; beyond it is sky
_CENTER_DEPTH_SIZE = (160, 88)  # resolution at which center_depth and visibility are measured
_SOFTNESS = 0.06  # every pattern edge is at least this soft (fraction of the pattern's size)


# -- ray casting ------------------------------------------------------------------------------------------
def _pose(obj: Object3D, times: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Centre ``x, y, z`` and ``yaw`` of ``obj`` at ``times`` (each the shape of ``times``)."""
    cx, cy, cz = obj.center
    m = obj.motion
    if m.kind == "linear":
        vx, vy, vz = m.velocity
        return cx + vx * times, cy + vy * times, cz + vz * times, obj.yaw + 0 * times
    if m.kind == "circular":
        a = m.angular_speed * times
        c, s = torch.cos(a), torch.sin(a)
        px, pz = m.pivot
        rx, rz = cx - px, cz - pz
        return px + c * rx + s * rz, cy + 0 * times, pz - s * rx + c * rz, obj.yaw + a
    z = torch.zeros_like(times)
    return cx + z, cy + z, cz + z, obj.yaw + z


def _rotates(obj: Object3D) -> bool:
    return obj.yaw != 0.0 or (obj.motion.kind == "circular" and obj.motion.angular_speed != 0.0)


def _to_local(v: Vec, cos: Tensor | None, sin: Tensor | None) -> Vec:
    """Rotate a world vector into an object's frame (inverse of a yaw about the vertical axis)."""
    if cos is None:
        return v
    x, y, z = v
    return cos * x - sin * z, y, sin * x + cos * z


def _to_world(v: Vec, cos: Tensor | None, sin: Tensor | None) -> Vec:
    if cos is None:
        return v
    x, y, z = v
    return cos * x + sin * z, y, -sin * x + cos * z


def _hit_sphere(o: Vec, d: Vec, c: Vec, r: float) -> Tensor:
    px, py, pz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    b = px * d[0] + py * d[1] + pz * d[2]
    disc = b * b - (px * px + py * py + pz * pz - r * r)
    s = disc.clamp_min(0).sqrt()
    t = torch.where(-b - s > _EPS, -b - s, -b + s)
    return torch.where((disc >= 0) & (t > _EPS), t, math.inf)


def _hit_box(o: Vec, d: Vec, c: Vec, cos, sin, h: tuple[float, float, float]) -> Tensor:
    lo = _to_local((o[0] - c[0], o[1] - c[1], o[2] - c[2]), cos, sin)
    ld = _to_local(d, cos, sin)
    tmin = tmax = None
    for k in range(3):
        inv = 1.0 / ld[k]
        ta, tb = (-h[k] - lo[k]) * inv, (h[k] - lo[k]) * inv
        near, far = torch.minimum(ta, tb), torch.maximum(ta, tb)
        tmin = near if tmin is None else torch.maximum(tmin, near)
        tmax = far if tmax is None else torch.minimum(tmax, far)
    t = torch.where(tmin > _EPS, tmin, tmax)
    return torch.where((tmax >= tmin) & (t > _EPS), t, math.inf)


def _hit_cylinder(o: Vec, d: Vec, c: Vec, r: float, hh: float) -> Tensor:
    px, py, pz = o[0] - c[0], o[1] - c[1], o[2] - c[2]
    a = (d[0] * d[0] + d[2] * d[2]).clamp_min(1e-12)
    b = px * d[0] + pz * d[2]
    disc = b * b - a * (px * px + pz * pz - r * r)
    s = disc.clamp_min(0).sqrt()
    best = None
    for sign in (-1.0, 1.0):  # both side crossings (the far one matters only from inside the column)
        t = (-b + sign * s) / a
        ok = (disc >= 0) & (t > _EPS) & ((py + t * d[1]).abs() <= hh)
        t = torch.where(ok, t, math.inf)
        best = t if best is None else torch.minimum(best, t)
    for yc in (-hh, hh):  # caps
        t = (yc - py) / d[1]
        qx, qz = px + t * d[0], pz + t * d[2]
        ok = (t > _EPS) & (qx * qx + qz * qz <= r * r)
        best = torch.minimum(best, torch.where(ok, t, math.inf))
    return best


def _hit_plane(o: Vec, d: Vec, plane: Plane) -> Tensor:
    a = plane.axis
    t = (plane.offset - o[a]) / d[a]
    ok = t > _EPS
    for k in range(3):
        if k == a:
            continue
        lo, hi = plane.bounds[k]
        if math.isfinite(lo) or math.isfinite(hi):
            q = o[k] + t * d[k]
            if math.isfinite(lo):
                ok = ok & (q >= lo)
            if math.isfinite(hi):
                ok = ok & (q <= hi)
    if math.isfinite(plane.radius):
        q = [o[k] + t * d[k] - plane.origin[k] for k in range(3) if k != a]
        ok = ok & (q[0] * q[0] + q[1] * q[1] <= plane.radius ** 2)
    return torch.where(ok, t, math.inf)


def _near_rays(o: Vec, d: Vec, pose, radius: float, spread: float) -> Tensor:
    """Rays that can hit a bounding sphere of ``radius`` around the pose's centre: a cheap, conservative
    test. ``spread`` widens it to a cone (rays within that angle, as a tangent, of ``d``)."""
    qx, qy, qz = pose[0] - o[0], pose[1] - o[1], pose[2] - o[2]
    along = qx * d[0] + qy * d[1] + qz * d[2]
    perp2 = qx * qx + qy * qy + qz * qz - along * along
    reach = radius * 1.001 + 1e-4
    if spread > 0:
        reach = reach + spread * along.clamp_min(0)
    return (along > -radius) & (perp2 < reach * reach)


def _hit(surface, o: Vec, d: Vec, pose) -> Tensor:
    """Ray parameter of the nearest hit (``inf`` for none); all arguments broadcast."""
    if surface.kind == "plane":
        return _hit_plane(o, d, surface)
    c = pose[:3]
    if surface.kind == "sphere":
        return _hit_sphere(o, d, c, surface.radius)
    if surface.kind == "box":
        cs = (torch.cos(pose[3]), torch.sin(pose[3])) if _rotates(surface) else (None, None)
        return _hit_box(o, d, c, *cs, surface.half_size)
    return _hit_cylinder(o, d, c, surface.radius, surface.half_height)


def _geometry(surface, p: Vec, d: Vec, pose) -> tuple[Vec, Vec, tuple]:
    """World normal, texture coordinates and the object's ``(cos, sin)`` of yaw (or ``None``s) at hit
    points ``p``."""
    if surface.kind == "plane":
        a = surface.axis
        s = -torch.sign(d[a])
        s = torch.where(s == 0, 1.0, s)
        zero = torch.zeros_like(p[0])
        n = tuple(s if k == a else zero for k in range(3))
        u = tuple(zero if k == a else p[k] - surface.origin[k] for k in range(3))
        return n, u, (None, None)
    c = pose[:3]
    cs = (torch.cos(pose[3]), torch.sin(pose[3])) if _rotates(surface) else (None, None)
    rel = (p[0] - c[0], p[1] - c[1], p[2] - c[2])
    u = _to_local(rel, *cs)
    if surface.kind == "sphere":
        r = surface.radius
        return (rel[0] / r, rel[1] / r, rel[2] / r), u, cs
    if surface.kind == "box":
        q = [u[k].abs() / surface.half_size[k] for k in range(3)]
        k0 = q[0] >= torch.maximum(q[1], q[2])
        k1 = ~k0 & (q[1] >= q[2])
        k2 = ~k0 & ~k1
        face = (k0, k1, k2)
        nl = tuple(torch.where(face[k], torch.sign(u[k]), 0.0) for k in range(3))
        u = tuple(torch.where(face[k], 0.0, u[k]) for k in range(3))
        return _to_world(nl, *cs), u, cs
    # cylinder
    r, hh = surface.radius, surface.half_height
    radial = torch.sqrt(u[0] * u[0] + u[2] * u[2]) / r
    cap = u[1].abs() / hh > radial
    zero = torch.zeros_like(u[0])
    n = (torch.where(cap, zero, rel[0] / r), torch.where(cap, torch.sign(u[1]), zero),
         torch.where(cap, zero, rel[2] / r))
    u = (u[0], torch.where(cap, zero, u[1]), u[2])
    return n, u, cs


# -- textures -------------------------------------------------------------------------------------------
def _square_filtered(x: Tensor, w: Tensor) -> Tensor:
    """A ±1 square wave (+1 on even unit cells), box-filtered over width ``w`` (same units)."""
    w = w.clamp_min(1e-3)

    def integral(v):  # antiderivative of the square wave: a triangle wave
        return 1.0 - (torch.remainder(v, 2.0) - 1.0).abs()

    return (integral(x + 0.5 * w) - integral(x - 0.5 * w)) / w


def _hash01(ix: Tensor, iy: Tensor, iz: Tensor, seed: int) -> Tensor:
    """Deterministic lattice hash to [0, 1] (int64, 31-bit arithmetic: same on every device)."""
    m = 0x7FFFFFFF
    h = (ix * 73856093 + iy * 19349663 + iz * 83492791 + seed * 2654435) & m
    h = ((h ^ (h >> 13)) * 12741) & m
    h = ((h ^ (h >> 11)) * 40503) & m
    h = h ^ (h >> 15)
    return (h & 0xFFFF).float() / 65535.0


def _value_noise(x: Tensor, y: Tensor, z: Tensor, seed: int) -> Tensor:
    """Smooth 3D value noise in [0, 1] with unit feature size."""
    fx, fy, fz = torch.floor(x), torch.floor(y), torch.floor(z)
    tx, ty, tz = x - fx, y - fy, z - fz
    tx, ty, tz = (t * t * (3 - 2 * t) for t in (tx, ty, tz))
    ix, iy, iz = fx.long(), fy.long(), fz.long()
    out = 0.0
    for dx in (0, 1):
        wx = tx if dx else 1 - tx
        for dy in (0, 1):
            wy = ty if dy else 1 - ty
            for dz in (0, 1):
                wz = tz if dz else 1 - tz
                out = out + wx * wy * wz * _hash01(ix + dx, iy + dy, iz + dz, seed)
    return out


def _albedo(mat: Material, u: Vec, width: Vec) -> Tensor:
    """``(M, 3)`` surface colour at texture coordinates ``u``. ``width`` holds the pixel's footprint along
    each texture axis (metres): patterns are box-filtered over it, so they do not alias and look the same
    from every view."""
    c1 = torch.tensor(PALETTE[mat.color], dtype=u[0].dtype, device=u[0].device)
    if mat.texture == "plain":
        return c1.expand(u[0].shape[0], 3)
    c2 = torch.tensor(PALETTE[mat.color2], dtype=u[0].dtype, device=u[0].device)
    s = mat.scale
    ws = [torch.sqrt((v / s) ** 2 + _SOFTNESS ** 2) for v in width]
    if mat.texture == "checker":
        prod = None
        for k in range(3):
            f = _square_filtered(u[k] / s + 0.5, ws[k])
            prod = f if prod is None else prod * f
        f = 0.5 - 0.5 * prod
    elif mat.texture == "stripes":
        f = 0.5 - 0.5 * _square_filtered(u[mat.axis] / s + 0.5, ws[mat.axis])
    elif mat.texture == "noise":
        x, y, z = (v / s for v in u)
        w = torch.maximum(torch.maximum(ws[0], ws[1]), ws[2])
        n1 = _value_noise(x, y, z, mat.noise_seed) - 0.5
        n2 = _value_noise(2 * x + 17.3, 2 * y + 5.1, 2 * z + 9.7, mat.noise_seed + 1) - 0.5
        f = 0.5 + 1.5 * (n1 * (1 - w).clamp(0, 1) + 0.5 * n2 * (1 - 2 * w).clamp(0, 1))
        f = f.clamp(0, 1)
    else:  # gradient
        f = (0.5 + u[mat.axis] / (2 * s)).clamp(0, 1)
        f = f * f * (3 - 2 * f)
    return c1 + f[:, None] * (c2 - c1)


def _sky(world: World, dy: Tensor) -> Tensor:
    """``(M, 3)`` sky colour for ray directions with vertical component ``dy`` (world up is -y)."""
    h = torch.tensor(world.sky.horizon, dtype=dy.dtype, device=dy.device)
    z = torch.tensor(world.sky.zenith, dtype=dy.dtype, device=dy.device)
    up = (-dy).clamp(0, 1).sqrt()
    return h + up[:, None] * (z - h)


# -- rendering --------------------------------------------------------------------------------------------
def _shadow_directions(light: Tensor, softness: float) -> list[Vec]:
    """Directions of the shadow rays: the light itself, or four spread over a disc of ``softness`` radians
    (a sun of finite size, so shadow edges get a penumbra)."""
    if softness <= 0:
        return [tuple(light[j].expand(1) for j in range(3))]
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=light.dtype, device=light.device)
    if abs(float(light[0])) > 0.9:
        helper = torch.tensor([0.0, 0.0, 1.0], dtype=light.dtype, device=light.device)
    e1 = torch.nn.functional.normalize(torch.linalg.cross(light, helper), dim=0)
    e2 = torch.linalg.cross(light, e1)
    out = []
    for a, b in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        v = torch.nn.functional.normalize(light + math.tan(softness) * math.sqrt(0.5) * (a * e1 + b * e2), dim=0)
        out.append(tuple(v[j].expand(1) for j in range(3)))
    return out


def _as_times(time: float | Tensor, b: int, device, dtype) -> Tensor:
    t = torch.as_tensor(time, dtype=dtype, device=device)
    if t.ndim == 0:
        return t.expand(b).clone()
    t = t.reshape(-1)
    if t.numel() != b:
        raise InputError(f"time must be a number or hold one value per camera ({b}), got {t.numel()}")
    return t


def _trace(world: World, cams: Cameras, times: Tensor, shade: bool, shadows: bool, shadow_softness: float,
           texture_filter: float, sky_depth: float) -> dict[str, Tensor]:
    """Ray cast one chunk of cameras; returns flat ``(b, n)`` / ``(b, n, 3)`` buffers."""
    b, n = len(cams), cams.width * cams.height
    _, dirs = pixel_rays(cams)
    dirs = dirs.reshape(b, n, 3).permute(2, 0, 1).contiguous()
    d: Vec = (dirs[0], dirs[1], dirs[2])
    centres = cams.centers
    o: Vec = tuple(centres[:, k:k + 1].contiguous() for k in range(3))
    tcol = times[:, None]
    surfaces = world.surfaces
    poses = [None if s.kind == "plane" else _pose(s, tcol) for s in surfaces]

    best = torch.full((b, n), math.inf, dtype=dirs.dtype, device=dirs.device)
    ident = torch.full((b, n), -1, dtype=torch.long, device=dirs.device)
    for k, (s, pose) in enumerate(zip(surfaces, poses)):
        if s.kind in ("box", "cylinder"):  # costly tests: only on rays that pass its bounding sphere
            cand = _near_rays(o, d, pose, s.bounding_radius, 0.0).reshape(-1)
            sel = torch.nonzero(cand).squeeze(1)
            t = torch.full((b * n,), math.inf, dtype=dirs.dtype, device=dirs.device)
            if sel.numel():
                bsel = sel // n
                t[sel] = _hit(s, tuple(v[bsel, 0] for v in o), tuple(v.reshape(-1)[sel] for v in d),
                              tuple(v[bsel, 0] for v in pose))
            t = t.reshape(b, n)
        else:
            t = _hit(s, o, d, pose)
        closer = t < best
        best = torch.where(closer, t, best)
        ident.masked_fill_(closer, k)

    fwd = cams.camera_to_world[:, :3, 2]
    hit = ident >= 0
    zdepth = best * (d[0] * fwd[:, 0:1] + d[1] * fwd[:, 1:2] + d[2] * fwd[:, 2:3])
    zdepth = torch.where(hit, zdepth, sky_depth)
    out = {"depth": zdepth, "mask": hit, "surface": ident}
    if not shade:
        return out

    flat_id, flat_t = ident.reshape(-1), best.reshape(-1)
    dflat = tuple(v.reshape(-1) for v in d)
    rgb = torch.empty(b * n, 3, dtype=dirs.dtype, device=dirs.device)
    sky_idx = torch.nonzero(flat_id < 0).squeeze(1)
    rgb[sky_idx] = _sky(world, dflat[1][sky_idx])

    light = torch.tensor(world.light.direction, dtype=dirs.dtype, device=dirs.device)
    light = light / light.norm()
    pix = 1.0 / cams.intrinsics[:, :2].min(dim=1).values  # radians per pixel (at the centre)
    c2w = cams.camera_to_world
    right, down = c2w[:, :3, 0], c2w[:, :3, 1]
    obj_ids = [k for k, s in enumerate(surfaces) if s.kind != "plane"]
    shadow_dirs = _shadow_directions(light, shadow_softness)
    light_dir = tuple(light[j].expand(1) for j in range(3))
    spread = math.tan(max(shadow_softness, 0.0)) * 1.05
    for k, (s, pose) in enumerate(zip(surfaces, poses)):
        idx = torch.nonzero(flat_id == k).squeeze(1)
        if idx.numel() == 0:
            continue
        bi = idx // n
        t = flat_t[idx]
        di = tuple(v[idx] for v in dflat)
        p = tuple(o[j][bi, 0] + t * di[j] for j in range(3))
        pose_i = None if pose is None else tuple(v[bi, 0] for v in pose)
        nrm, u, cs = _geometry(s, p, di, pose_i)
        # Ray differentials: the pixel's footprint on the surface along each local axis (the offsets of
        # one-pixel steps right and down, projected along the ray onto the tangent plane).
        dn = nrm[0] * di[0] + nrm[1] * di[1] + nrm[2] * di[2]
        dn = torch.where(dn.abs() < 1e-2, torch.where(dn < 0, -1e-2, 1e-2), dn)
        step = texture_filter * t * pix[bi]
        w2 = [0.0, 0.0, 0.0]
        for axis in (right, down):
            a = tuple(axis[bi, j] for j in range(3))
            ratio = (a[0] * nrm[0] + a[1] * nrm[1] + a[2] * nrm[2]) / dn
            dp = _to_local(tuple(step * (a[j] - ratio * di[j]) for j in range(3)), *cs)
            w2 = [w2[j] + dp[j] * dp[j] for j in range(3)]
        albedo = _albedo(s.material, u, tuple(v.sqrt() for v in w2))
        lambert = (nrm[0] * light[0] + nrm[1] * light[1] + nrm[2] * light[2]).clamp_min(0)
        if shadows and len(obj_ids) > (1 if k in obj_ids else 0):
            lit = torch.nonzero(lambert > 0).squeeze(1)
            if lit.numel():
                eps = 2e-3 * (1 + t[lit] * 0.01)
                so = tuple(p[j][lit] + nrm[j][lit] * eps for j in range(3))
                blocked = torch.zeros(len(shadow_dirs), lit.numel(), dtype=torch.bool, device=dirs.device)
                for j in obj_ids:
                    if j == k:
                        continue  # convex objects cannot shadow their own lit side
                    pj = tuple(v[bi[lit], 0] for v in poses[j])
                    near = torch.nonzero(_near_rays(so, light_dir, pj, surfaces[j].bounding_radius,
                                                    spread)).squeeze(1)
                    if near.numel() == 0:
                        continue
                    so_n, pj_n = tuple(v[near] for v in so), tuple(v[near] for v in pj)
                    for i, sd in enumerate(shadow_dirs):
                        blocked[i, near] |= torch.isfinite(_hit(surfaces[j], so_n, sd, pj_n))
                visible = 1.0 - blocked.to(dirs.dtype).mean(0)
                lambert[lit] = lambert[lit] * visible
        shade_k = world.light.ambient + world.light.intensity * lambert
        rgb[idx] = albedo * shade_k[:, None]
    out["rgb"] = rgb.clamp_(0, 1).reshape(b, n, 3)
    return out


def render(world: World, cameras: Cameras, time: float | Tensor = 0.0, *, shadows: bool = True,
           shadow_softness: float = 0.06, supersample: int = 1, texture_filter: float = 2.0,
           sky_depth: float = SKY_DEPTH, max_rays: int | None = None) -> WorldRender:
    """Ray cast ``world`` from every camera.

    Args:
        world: the scene.
        cameras: ``B`` cameras (``H × W`` pixels, on the device to render on).
        time: seconds; a number, or ``(B,)`` one time per camera (moving objects are placed there).
        shadows: objects cast shadows (shadow rays towards the light from every lit point).
        shadow_softness: angular radius (radians) of the light: four shadow rays spread over it give soft
            shadow edges; 0 casts one ray (hard shadows).
        supersample: ``s × s`` rays per pixel averaged for ``rgb`` (anti-aliasing); ``depth``, ``mask`` and
            ``surface`` always come from the single ray through each pixel centre, so they stay exact.
        texture_filter: width in pixels of the box filter over which patterns are integrated (from ray
            differentials, so distant checkers fade to their mean instead of aliasing). The default 2 is a
            little softer than a box pixel, which keeps pattern edges consistent between nearby views.
        sky_depth: depth written where no surface is hit.
        max_rays: rays traced at once, whole cameras per chunk (default 2**19 on CPU, about 200 MB;
            2**23 on a GPU, where small chunks leave it idle).

    Returns:
        :class:`WorldRender` with ``rgb (B, 3, H, W)``, ``depth (B, 1, H, W)`` z-depth, ``mask (B, 1, H, W)``
        and ``surface (B, 1, H, W)``.
    """
    if not isinstance(cameras, Cameras):
        raise InputError(f"cameras must be a lyra3d Cameras batch, got {type(cameras).__name__}")
    if int(supersample) != supersample or supersample < 1:
        raise InputError(f"supersample must be a positive integer, got {supersample}")
    supersample = int(supersample)
    cameras = cameras if cameras.intrinsics.dtype.is_floating_point else cameras.to(dtype=torch.float32)
    b, h, w = len(cameras), cameras.height, cameras.width
    dtype = cameras.intrinsics.dtype
    times = _as_times(time, b, cameras.device, dtype)
    if max_rays is None:
        max_rays = 1 << 23 if cameras.device.type == "cuda" else 1 << 19

    def run(cams: Cameras, shade: bool, filt: float):
        per = max(1, max_rays // (cams.width * cams.height))
        parts = [_trace(world, cams[i:i + per], times[i:i + per], shade, shadows, shadow_softness, filt,
                        sky_depth)
                 for i in range(0, b, per)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    if supersample == 1:
        geo = run(cameras, True, texture_filter)
        rgb = geo["rgb"].reshape(b, h, w, 3).permute(0, 3, 1, 2)
    else:
        fine = run(cameras.resized(w * supersample, h * supersample), True, texture_filter)
        rgb = fine["rgb"].reshape(b, h * supersample, w * supersample, 3).permute(0, 3, 1, 2)
        rgb = torch.nn.functional.avg_pool2d(rgb, supersample)
        geo = run(cameras, False, texture_filter)
    shape = (b, 1, h, w)
    return WorldRender(rgb=rgb.contiguous(), depth=geo["depth"].reshape(shape),
                       mask=geo["mask"].reshape(shape).to(dtype), surface=geo["surface"].reshape(shape))


def center_depth(world: World, *, objects_only: bool = True) -> float:
    """The scene's centre depth: the median z-depth seen by the default input camera.

    By default the median is taken over the objects' pixels (the trajectories then turn towards the
    objects), falling back to all hit pixels when no object is visible. Uses the value cached by
    :func:`make_world` when present (and ``objects_only``).
    """
    if objects_only and world.center_depth is not None:
        return float(world.center_depth)
    return _measure_center_depth(world, objects_only)


def _measure_center_depth(world: World, objects_only: bool = True, r: WorldRender | None = None) -> float:
    if r is None:
        r = render(world, default_camera(*_CENTER_DEPTH_SIZE), shadows=False)
    sel = r.surface >= len(world.planes) if objects_only else r.mask > 0
    if not bool(sel.any()):
        sel = r.mask > 0
    if not bool(sel.any()):
        return 5.0  # an empty view: any sane scale
    return float(r.depth[sel].median())
