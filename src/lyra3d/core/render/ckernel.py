"""Build and load the compiled CPU renderer (``lyra3d/core/render/csrc/rasterize.c``) on first use.

The kernel is compiled from the package's own C source with the machine's C compiler (``$CC``, else
``gcc``, ``cc`` or ``clang`` on ``PATH``):
``-O3 -std=c99 -fno-math-errno -fno-trapping-math -fPIC -shared -fopenmp -lm`` (again without ``-fopenmp``
if the compiler lacks OpenMP). No ``-march``: the library is portable to any CPU of the architecture. It is
cached in ``$LYRA3D_CACHE_DIR``, else ``$XDG_CACHE_HOME/lyra3d``, else ``~/.cache/lyra3d`` (else a folder in
the temporary directory when that is not writable), under a name keyed by a hash of the source, the
compiler and the flags, written to a temporary name and renamed, so concurrent first uses are safe.

``LYRA3D_NO_CKERNEL=1`` disables the kernel (``backend="auto"`` then uses the PyTorch reference).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).resolve().parent / "csrc" / "rasterize.c"
_BASE_FLAGS = ["-O3", "-std=c99", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared"]
_ABI = 2
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_error: str | None = None


def cache_dir() -> Path:
    """Where built kernels are kept."""
    if os.environ.get("LYRA3D_CACHE_DIR"):
        return Path(os.environ["LYRA3D_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lyra3d"


def find_compiler() -> str | None:
    """The C compiler to use, or None."""
    cc = os.environ.get("CC")
    if cc:
        return shutil.which(cc) or (cc if Path(cc).is_file() else None)
    for name in ("gcc", "cc", "clang"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _writable_cache_dir() -> Path:
    for path in (cache_dir(), Path(tempfile.gettempdir()) / f"lyra3d-{os.getuid() if hasattr(os, 'getuid') else 0}"):
        try:
            path.mkdir(parents=True, exist_ok=True)
            if os.access(path, os.W_OK):
                return path
        except OSError:
            continue
    raise RuntimeError(f"no writable cache folder for the compiled kernel (tried {cache_dir()}); "
                       "set $LYRA3D_CACHE_DIR")


def _compile(cc: str, flags: list[str], out: Path) -> str | None:
    """Compile the kernel to ``out`` atomically; return None on success or the compiler's complaint."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        os.close(fd)
    except OSError as e:
        return f"cannot write to {out.parent}: {e}"
    try:
        cmd = [cc, *flags, str(SOURCE), "-o", tmp, "-lm"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return lines[0] if lines else f"{Path(cc).name} exited with {proc.returncode}"
        os.replace(tmp, out)
        return None
    except (OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        Path(tmp).unlink(missing_ok=True)


def _build() -> ctypes.CDLL:
    if os.environ.get("LYRA3D_NO_CKERNEL", "") not in ("", "0"):
        raise RuntimeError("disabled by LYRA3D_NO_CKERNEL")
    if not SOURCE.is_file():
        raise RuntimeError(f"kernel source {SOURCE} is missing from the installed package")
    cc = find_compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (install gcc or set $CC)")
    source = SOURCE.read_bytes()
    folder = _writable_cache_dir()
    complaint = None
    for extra in (["-fopenmp"], []):
        flags = _BASE_FLAGS + extra
        key = hashlib.sha256(b"\0".join([source, cc.encode(), " ".join(flags).encode(),
                                         platform.machine().encode(), platform.system().encode()])).hexdigest()
        path = folder / f"rasterize-{key[:16]}.so"
        if not path.is_file():
            complaint = _compile(cc, flags, path)
            if complaint is not None:
                continue
        try:
            lib = ctypes.CDLL(str(path))
        except OSError as e:
            complaint = f"could not load {path}: {e}"
            continue
        if lib.lyra3d_rasterize_abi() != _ABI:
            complaint = f"{path} is a stale build (ABI mismatch)"
            continue
        ptr, i32, f32 = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
        f = lib.lyra3d_render
        f.restype = ctypes.c_int
        f.argtypes = ([ctypes.c_int64] + [ptr] * 5 + [i32, i32, ptr, ptr, i32, i32, f32, f32, f32, i32]
                      + [ptr] * 3)
        lib.openmp = bool(extra)
        return lib
    raise RuntimeError(f"compiling {SOURCE.name} with {cc} failed: {complaint}")


def load() -> ctypes.CDLL | None:
    """The kernel library, built if needed; None if it cannot be built here (see :func:`unavailable_reason`)."""
    global _lib, _error
    with _lock:
        if _lib is None and _error is None:
            try:
                _lib = _build()
            except RuntimeError as e:
                _error = str(e)
        return _lib


def unavailable_reason() -> str:
    """Why :func:`load` returned None (empty if the kernel is available)."""
    load()
    return _error or ""


def reset() -> None:
    """Forget the loaded kernel and any build error (tests use this after changing the environment)."""
    global _lib, _error
    with _lock:
        _lib, _error = None, None
