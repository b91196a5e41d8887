"""Files otel-tokens writes: private (0600) and never through a symlink an attacker could plant.

Usage logs and reports hold who called which model for how much; on a shared machine they are no one
else's business. The usage log is appended in place, so it is opened with ``O_NOFOLLOW``; reports are
replaced whole (a temporary file in the same directory, then ``os.replace``), so a reader never sees half
a report and a symlink at the path is replaced rather than followed.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile

PRIVATE_MODE = 0o600


class UnsafePathError(ValueError):
    """A path otel-tokens refuses to write: a symlink, or not a regular file."""


def open_private_append(path: str, setting: str) -> int:
    """A file descriptor appending to ``path``, created 0600; refuses a symlink, a FIFO or a device.

    ``setting`` names where the path came from (``OTEL_TOKENS_LOG``) for the error message. Raises
    :class:`UnsafePathError` for an unsafe path and ``OSError`` for anything else.
    """
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
             # A FIFO without a reader would block the open; non-blocking, it fails and is refused below.
             | getattr(os, "O_NONBLOCK", 0))
    try:
        fd = os.open(path, flags, PRIVATE_MODE)
    except OSError as err:
        if err.errno == errno.ELOOP or (err.errno == errno.ENXIO and _is_fifo(path)):
            raise UnsafePathError(_refusal(path, setting)) from err
        raise
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise UnsafePathError(f"{setting}={path!r} is not a regular file; otel-tokens writes only regular files")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _is_fifo(path: str) -> bool:
    try:
        return stat.S_ISFIFO(os.lstat(path).st_mode)
    except OSError:
        return False


def _refusal(path: str, setting: str) -> str:
    if os.path.islink(path):
        return (f"{setting}={path!r} is a symbolic link; otel-tokens does not follow symlinks when writing "
                f"(point {setting} at the file itself)")
    return f"{setting}={path!r} is not a regular file; otel-tokens writes only regular files"


def write_private_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step, mode 0600; raises ``OSError``."""
    write_atomically(path, text, mode=PRIVATE_MODE)


def write_atomically(path: str | os.PathLike[str], text: str, *, mode: int) -> None:
    """Replace ``path`` with ``text`` (UTF-8) in one step, with ``mode``; raises ``OSError``.

    The text goes to a temporary file in the same directory, flushed to disk, then renamed over the
    path: readers see the old file or the new one, never a part, and a symlink at the path is replaced,
    not followed.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


__all__ = ["PRIVATE_MODE", "UnsafePathError", "open_private_append", "write_atomically", "write_private_atomically"]
