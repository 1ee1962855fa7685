"""Writing files so that a crash never leaves a half-written one behind."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from vaekit.errors import DiskError

# errno values that mean "the file system refused the write", as opposed to a bug of ours.
REFUSED_WRITES = {getattr(errno, name) for name in ("ENOSPC", "EROFS", "EACCES", "EPERM", "EDQUOT", "EIO", "EFBIG")
                  if hasattr(errno, name)}


def _default_file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: itself, or one it was raised from (torch.save reports a
    failed write as a RuntimeError whose context is the OSError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def disk_error(path: Path, error: OSError) -> DiskError:
    """One line naming the path the file system refused, and why."""
    reason = error.strerror or str(error)
    return DiskError(f"cannot write {path}: {reason}; files written before are unchanged")


def temp_prefix(path: Path) -> str:
    """Temp files of ``path`` are named ``.<name>.<random>.tmp`` in its folder."""
    return f".{path.name}."


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(handle)`` on a temp file in ``path``'s folder, then rename it over ``path``.

    A reader never sees a half-written file, and an interrupted write leaves the old file intact.
    When the file system refuses the write (full, read-only), the temp file is removed and a
    DiskError names ``path``.
    """
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp_name, _default_file_mode())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp_name, path)
    except BaseException as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        cause = _os_error_in(error)
        if cause is not None and cause.errno in REFUSED_WRITES:
            raise disk_error(path, cause) from error
        raise


def remove_stale_temp_files(folder: Path, name: str | None = None) -> list[Path]:
    """Delete temp files that an interrupted ``atomic_write_bytes`` (a killed process) left in
    ``folder``: all of them, or only those of the file ``name``. Returns what was removed.

    Only call this where no other process can be writing the same files at that moment.
    """
    if not folder.is_dir():
        return []
    pattern = f"{temp_prefix(folder / name)}*.tmp" if name else ".*.tmp"
    removed = []
    for stale in folder.glob(pattern):
        if stale.is_file():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed
