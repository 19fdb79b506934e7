"""A seccomp filter that stops the sandboxed code from creating user namespaces.

Inside a user namespace of its own, an unprivileged process is "root" to much of the
kernel (mounts, netfilter, ...), which is where most container escapes have been found.
bwrap can forbid that only when it made a user namespace itself (``--disable-userns``),
which it does not when the server runs as root; this filter works in both cases. It is a
classic BPF program (``bwrap --seccomp FD``) that answers EPERM to ``unshare`` and
``clone`` with CLONE_NEWUSER, ENOSYS to ``clone3`` (whose flags it cannot read; libc then
falls back to ``clone``), and EPERM to every syscall of another ABI (i386, x32), which
would otherwise go around it.
"""

from __future__ import annotations

import os
import platform
import struct

CLONE_NEWUSER = 0x10000000
X32_SYSCALL_BIT = 0x40000000
EPERM = 1
ENOSYS = 38
# arch (AUDIT_ARCH_*) and syscall numbers: unshare, clone, clone3.
_ABIS = {
    "x86_64": (0xC000003E, 272, 56, 435),
    "aarch64": (0xC00000B7, 97, 220, 435),
}
_LOAD = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ, _JGE, _JSET = 0x15, 0x35, 0x45  # BPF_JMP | op | BPF_K
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_ARCH_OFFSET, _NR_OFFSET, _ARG0_OFFSET = 4, 0, 16  # in struct seccomp_data


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(machine: str | None = None) -> bytes | None:
    """The filter for this machine's ABI, or None where it is not known."""
    abi = _ABIS.get(machine or platform.machine())
    if abi is None:
        return None
    arch, unshare, clone, clone3 = abi
    ops = [
        _op(_LOAD, _ARCH_OFFSET),
        _op(_JEQ, arch, jt=1),  # 1
        _op(_RET, _ERRNO | EPERM),  # 2: another ABI
        _op(_LOAD, _NR_OFFSET),  # 3
        _op(_JGE, X32_SYSCALL_BIT, jt=7),  # 4 -> 12 (x32)
        _op(_JEQ, clone3, jt=7),  # 5 -> 13
        _op(_JEQ, unshare, jt=1),  # 6 -> 8
        _op(_JEQ, clone, jf=2),  # 7 -> 10 (allow) when neither
        _op(_LOAD, _ARG0_OFFSET),  # 8: the flags (low 32 bits; little-endian)
        _op(_JSET, CLONE_NEWUSER, jt=1),  # 9 -> 11 when set
        _op(_RET, _ALLOW),  # 10
        _op(_RET, _ERRNO | EPERM),  # 11
        _op(_RET, _ERRNO | EPERM),  # 12
        _op(_RET, _ERRNO | ENOSYS),  # 13
    ]
    return b"".join(ops)


def program_fd(machine: str | None = None) -> int | None:
    """A memfd holding the filter, positioned at its start, for ``bwrap --seccomp``; the
    caller closes it. None where the ABI is not known (no filter)."""
    code = program(machine)
    if code is None:
        return None
    fd = os.memfd_create("assistd-seccomp")  # close-on-exec: inherited through pass_fds
    os.write(fd, code)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
