"""The host's side of a thread's working directory, which the sandboxed code controls.

The code can plant symbolic links (``/mnt/data/x -> /etc/shadow`` means the host's
``/etc/shadow`` once the host follows it), FIFOs that block a reader, or millions of
files. So the host never follows a link in there: it walks with ``lstat``, reads and
writes through directory file descriptors opened with ``O_NOFOLLOW``, reports regular
files only, and stops listing after ``MAX_ENTRIES``. All of it blocks: call it in a
thread.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Generator
from pathlib import Path, PurePosixPath
from typing import cast

from assistd.sandbox.base import FileChange

MAX_ENTRIES = 10_000  # entries listed per snapshot; a directory with more is partly seen
Snapshot = dict[str, tuple[int, int, int]]  # name -> (size, mtime_ns, inode)
_Walk = Generator[tuple[str, list[str], list[str], int], None, None]


def snapshot(root: Path) -> Snapshot:
    """The regular files under ``root``, by ``/``-separated relative name.

    ``os.fwalk`` descends through directory fds without following links, so a directory
    swapped for a link cannot make it list a host directory.
    """
    found: Snapshot = {}
    seen = 0
    # A generator (typeshed says Iterator): closing it early closes the fds it holds.
    walk = cast(_Walk, os.fwalk(root, follow_symlinks=False))
    try:
        for directory, subdirectories, names, fd in walk:
            prefix = os.path.relpath(directory, root)
            seen += len(subdirectories)
            for name in names:
                seen += 1
                if seen > MAX_ENTRIES:
                    return found
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    key = name if prefix == "." else f"{prefix}/{name}"
                    found[key] = (info.st_size, info.st_mtime_ns, info.st_ino)
    finally:
        walk.close()
    return found


def changes(before: Snapshot, after: Snapshot) -> list[FileChange]:
    """Files that are new in ``after`` or differ from ``before`` (size, time or inode)."""
    return [
        FileChange(name, entry[0])
        for name, entry in sorted(after.items())
        if before.get(name) != entry
    ]


def _parts(name: str) -> tuple[str, ...]:
    parts = PurePosixPath(name).parts
    if not parts or name.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a file name inside the working directory: {name!r}")
    return parts


def _open_directory(root: Path, parts: tuple[str, ...]) -> int:
    """An fd on ``root/parts...``, refusing a symbolic link at every step."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags)
    try:
        for part in parts:
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_file(root: Path, name: str, max_bytes: int) -> bytes:
    parts = _parts(name)
    try:
        directory = _open_directory(root, parts[:-1])
    except NotADirectoryError as exc:
        raise FileNotFoundError(name) from exc
    try:
        # O_NONBLOCK: opening a FIFO the code left there must not wait for a writer.
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, dir_fd=directory)
        except OSError as exc:  # ELOOP: a symbolic link
            raise FileNotFoundError(name) from exc
    finally:
        os.close(directory)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise FileNotFoundError(name)
        if info.st_size > max_bytes:
            raise ValueError(f"{name} is larger than {max_bytes} bytes")
        data = file.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{name} is larger than {max_bytes} bytes")
    return data


def write_file(root: Path, name: str, data: bytes, owner: tuple[int, int] | None) -> None:
    """Write ``root/name`` (a single component) as a new file renamed into place, which
    replaces whatever entry had that name (a link is replaced, not followed)."""
    if "/" in name or len(_parts(name)) != 1:
        raise ValueError(f"not a single file name: {name!r}")
    directory = _open_directory(root, ())
    temporary = f".assistd-upload-{os.getpid()}-{name}"[:255]
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(temporary, flags, 0o644, dir_fd=directory)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            if owner is not None:
                os.fchown(file.fileno(), *owner)
        os.replace(temporary, name, src_dir_fd=directory, dst_dir_fd=directory)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary, dir_fd=directory)
        raise
    finally:
        os.close(directory)


def chown_tree(root: Path, uid: int, gid: int) -> None:
    """Give ``root`` and everything under it to ``uid``, never following links."""
    os.chown(root, uid, gid, follow_symlinks=False)
    for _, subdirectories, names, fd in os.fwalk(root, follow_symlinks=False):
        for name in subdirectories + names:
            with contextlib.suppress(FileNotFoundError):
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)


def remove_tree(root: Path) -> None:
    """Delete ``root`` (``shutil.rmtree`` works through fds and does not follow links)."""
    shutil.rmtree(root, ignore_errors=True)
