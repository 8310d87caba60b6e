"""Atomic file writes: a file (or an output folder) appears under its final name only once it is complete;
:func:`check_output`, the one "exists; pass --force" check of every writer."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterator

from lyra3d.errors import InputError

#: When this process started: staging folders older than this are left by runs that were killed.
_PROCESS_START = time.time()


def check_output(path: str | Path, force: bool, kind: str = "file", resume: bool = False) -> Path:
    """Check an output path before any work: an existing one is refused unless ``force`` (one line naming the
    fix), and so is one of the other ``kind`` (``"file"`` or ``"folder"``: a folder where a file is to be
    written, or a file where a folder is) whatever ``force`` says. With ``force`` an existing folder is replaced
    only if lyra3d wrote it (:data:`MARKER` or one of its report files); a resumable output folder passes
    ``force=True, resume=True`` (it may exist and is added to, not replaced). The path must be one that can be
    made (:func:`probe_output`). Returns ``path`` as a :class:`Path`."""
    if kind not in ("file", "folder"):
        raise ValueError(f"kind must be 'file' or 'folder', got {kind!r}")
    path = Path(path)
    if path.name in ("", ".", "..") or str(path) in (".", ".."):
        raise InputError(f"output needs a name, got {str(path)!r}; give a new file or folder name")
    if (path.exists() or path.is_symlink()) and not force:
        raise InputError(f"{path} exists; pass --force to overwrite it")
    if kind == "file" and path.is_dir():
        raise InputError(f"{path} is a folder; give a file name")
    if kind == "folder" and path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file; give a folder name")
    if kind == "folder" and path.is_dir() and force and not resume and not _ours(path):
        raise InputError(f"{path} holds files that lyra3d did not write (no {MARKER} or report.json); "
                         "--force replaces only lyra3d output folders: give a new folder")
    probe_output(path)
    return path


#: A file that marks a folder as lyra3d's (put one there to let --force replace it) ...
MARKER = ".lyra3d"
#: ... as do the files that lyra3d writes into every output folder of its kind.
_OWN_FILES = ("report.json", "config.json", "sdg.json", "pipeline.json", "scene.usd")
#: Pseudo file systems no output can be written to.
_PSEUDO = (Path("/proc"), Path("/sys"))


def _ours(folder: Path) -> bool:
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    return not names or MARKER in names or any(n in names for n in _OWN_FILES)


def probe_output(path: str | Path) -> None:
    """Refuse, before any work, an output path that cannot be created: no name (``.``, ``..``, empty), inside
    /proc or /sys, below a file, or in a folder that is not writable (a staging folder is made and removed
    there to be sure)."""
    path = Path(path)
    if path.name in ("", ".", "..") or str(path) in (".", ".."):
        raise InputError(f"output needs a name, got {str(path)!r}; give a new file or folder name")
    full = Path(os.path.abspath(path))
    if any(full == p or p in full.parents for p in _PSEUDO):
        raise InputError(f"cannot write output to {path}: /proc and /sys are not real file systems; give a "
                         "folder on disk")
    parent = full.parent
    while not parent.exists() and not parent.is_symlink():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot make {path}: {parent} is a file, not a folder; give another output path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lyra3d-probe.", dir=parent))
    except OSError as e:
        raise InputError(f"cannot write to {parent} ({e.strerror or e}); give a writable output folder") from None


def _remove_stale_staging(out: Path, started: float) -> None:
    """Remove staging folders of ``out`` (``.NAME.xxxxxxxx.tmp``, left by a killed run) older than ``started``."""
    pattern = re.compile(rf"\.{re.escape(out.name)}\.[a-z0-9_]{{8}}\.(tmp|old)")
    with contextlib.suppress(OSError):
        for p in out.parent.iterdir():
            if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink() and p.stat().st_mtime < started:
                shutil.rmtree(p, ignore_errors=True)


def remove_stale_staging(out: str | Path, before: float | None = None) -> None:
    """Remove the staging folders of the output folder ``out`` left by runs killed before this process started
    (or before the time ``before``, when nothing writes ``out`` any more: a batch whose workers have ended)."""
    _remove_stale_staging(Path(out), _PROCESS_START if before is None else before)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed.

    The new file gets the usual permissions (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(f"output folder does not exist: {path.parent}")
    if path.is_dir():
        raise InputError(f"output path is a folder: {path}")
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except PermissionError:
        raise InputError(f"cannot write to {path.parent} (permission denied)") from None
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def usual_mode(path: Path, mode: int = 0o666) -> None:
    """Give ``path`` the usual permissions (``mode`` less the umask), not a writer's private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, mode & ~umask)


@contextlib.contextmanager
def staged_dir(out: str | Path, force: bool = False) -> Iterator[Path]:
    """Write an output folder in a temporary sibling folder, then move it into place in one rename.

    An existing ``out`` is refused (:class:`InputError`, before any work) unless ``force``; with
    ``force`` the old one is replaced only once the new one is complete. On any exception (including
    Ctrl-C) the temporary folder is removed and ``out`` is left as it was. Missing parent folders are
    made (and removed again on failure). Yields the temporary folder to write into::

        with staged_dir("scene_out", force=args.force) as tmp:
            save_ply(gaussians, tmp / "scene.ply")
            write_video(frames, tmp / "preview.mp4")
    """
    out = Path(out)
    if out.name in ("", ".", ".."):
        raise InputError(f"output folder needs a name, got {str(out)!r}")
    check_output(out, force, "folder")
    parent = out.parent
    _remove_stale_staging(out, _PROCESS_START)
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # folders this call creates
    ok = False
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=parent))
    except PermissionError:
        raise InputError(f"cannot write to {parent} (permission denied)") from None
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"cannot make output folder {out}: {parent} is not a folder") from None
    except OSError as e:  # read-only file system, disk full, ...
        raise InputError(f"cannot write to {parent} ({e.strerror or e})") from None
    try:
        usual_mode(tmp, 0o777)  # mkdtemp makes it private (0700)
        yield tmp
        if out.exists() or out.is_symlink():
            check_output(out, force, "folder")  # it may have appeared while we worked
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=parent))
            try:
                os.replace(out, old / out.name)  # move the old output aside in one rename
            except BaseException:
                old.rmdir()
                raise
            try:
                os.replace(tmp, out)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.replace(old / out.name, out)  # put the old one back (else it stays in `old`)
                    old.rmdir()
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
        ok = True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if not ok:
            for p in made:  # innermost first; only the empty folders this call made
                with contextlib.suppress(OSError):
                    p.rmdir()


def not_found(path: Path, what: str) -> str:
    """Why ``path`` is not a readable file, in words: a symlink loop or a broken symlink is not "not found"."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return f"{what} {path} is a symlink loop; point it at a real file"
        except OSError:
            return f"{what} {path} is a broken symlink (its target is missing); point it at a real file"
        return f"{what} {path} is a broken symlink; point it at a real file"
    if path.is_dir():
        return f"{what} {path} is a folder; give a file"
    return f"{what} not found: {path}"


def read_json(path: str | Path, what: str = "file"):
    """Parse a JSON file, or raise a one-line :class:`InputError` naming ``what`` is missing or broken."""
    path = Path(path)
    if not path.is_file():
        raise InputError(not_found(path, what))
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{what} {path} is not valid JSON ({e})") from None


def check_settings(path: str | Path, settings: dict, what: str) -> None:
    """Resumable output folders: write ``settings`` to ``path`` (JSON) the first time; later, refuse to go
    on when they differ (a one-line error naming the keys). ``what`` names the folder's content."""
    path = Path(path)
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except json.JSONDecodeError:
            raise InputError(f"{path} is not valid JSON; remove it or write to a new folder") from None
        diff = sorted(k for k in settings if have.get(k) != settings[k])
        if diff:
            raise InputError(f"{path.parent} holds {what} written with other settings ({', '.join(diff)} differ); "
                             "use the same settings to resume, or a new folder")
    else:
        tmp = path.with_name(f".tmp-{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(settings, indent=1))
        os.replace(tmp, path)
