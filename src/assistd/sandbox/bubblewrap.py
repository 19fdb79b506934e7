"""The default sandbox: each kernel in its own bubblewrap (``bwrap``) container.

What the code sees: a read-only ``/usr`` (and the ``/bin``, ``/lib*`` links into it), the
sandbox's own Python environment read-only at ``/opt/sandbox-venv``, the driver at
``/opt/assistd``, its thread's working directory at ``/mnt/data`` (its only writable
host path), a private ``/tmp`` and ``/dev/shm`` of bounded size, ``/proc`` of its own pid
namespace and a minimal ``/dev``. No ``/etc`` beyond the loader cache and fontconfig's
settings, no ``/home``, ``/root``, ``/work``, host ``/tmp``, server data or other threads'
directories; no network interface but its own loopback; an environment of its own
(``--clearenv``); its own pid, IPC and UTS namespaces; no way to make new user namespaces
(``seccomp``). It can still read the host paths of its mounts in /proc/self/mountinfo (the
names, not the content, of the environment and its working directory).

Who runs it: an unprivileged user. When the server is not root, bwrap makes a user
namespace in which the code is uid 65534, mapped to the server's user, and user
namespaces are then disabled inside. When the server is root, a user namespace would map
the code to host root, and the kernel never applies RLIMIT_NPROC to root, so a fork bomb
would not be contained: there bwrap runs privileged, without a user namespace, and
``setpriv`` drops the code to a host uid of its own, ``uid_base + slot`` (one per live
kernel, so a process limit is per sandbox), with no capabilities and ``no_new_privs``.

Limits: the driver sets RLIMIT_AS (memory, per process), RLIMIT_NPROC (processes and
threads), RLIMIT_FSIZE, RLIMIT_CPU, RLIMIT_NOFILE and no core files before any cell runs,
and kills what a cell leaves running when it ends. A cgroup would cap the sandbox's memory
as a whole; that is what a container or gVisor implementation adds.

Needs bubblewrap 0.8 or later (Debian 12, Ubuntu 24.04) for ``--size`` and
``--disable-userns``; ``unavailable_reason`` says when it cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from assistd.sandbox import files, seccomp
from assistd.sandbox.process import GUEST_DIR, Launch, ProcessSandbox

VENV_MOUNT = "/opt/sandbox-venv"
GUEST_MOUNT = "/opt/assistd"
NOBODY = 65534
MIB = 1024 * 1024
# Host uids for the code when the server is root: far above the ranges distributions,
# systemd and rootless containers allocate.
DEFAULT_UID_BASE = 2_000_000_000
_ROOT_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def default_environment() -> Path:
    """``.venv-sandbox`` beside the server's own environment (where the Makefile puts it)."""
    return Path(sys.prefix).parent / ".venv-sandbox"


def guest_environment(tmp: str = "/tmp") -> dict[str, str]:
    """The whole environment of the code: nothing of the server's."""
    return {
        "PATH": f"{VENV_MOUNT}/bin:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": VENV_MOUNT,
        "PYTHONPATH": GUEST_MOUNT,  # the matplotlib backend, for any Python in there
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": tmp,
        "TMPDIR": tmp,
        "USER": "sandbox",
        "LOGNAME": "sandbox",
        "LANG": "C.UTF-8",
        "MPLBACKEND": "module://inline_backend",
        "MPLCONFIGDIR": f"{tmp}/matplotlib",
        # One thread per numeric library: threads count against the process limit, and
        # the machine's cores are shared by every sandbox and the server.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMEXPR_MAX_THREADS": "1",
    }


class BubblewrapSandbox(ProcessSandbox):
    """Kernels isolated by bubblewrap; see the module's docstring for what they see."""

    def __init__(
        self,
        root: Path,
        *,
        environment: Path | None = None,
        memory_mb: int = 1024,
        max_processes: int = 64,
        max_file_mb: int = 256,
        tmp_mb: int = 256,
        cpu_seconds: int = 3600,
        uid_base: int = DEFAULT_UID_BASE,
        bwrap: str = "bwrap",
        timeout_seconds: float = 60.0,
        idle_seconds: float = 600.0,
        max_live: int = 8,
        grace_seconds: float = 3.0,
        max_output_chars: int = 20_000,
    ) -> None:
        """
        Args:
            root: Host directory of the threads' working directories.
            environment: The sandbox's Python environment (a venv made from an interpreter
                under ``/usr``, which is all the sandbox sees of the host's Pythons).
            memory_mb: Address space of each process in the sandbox.
            max_processes: Processes and threads of one sandbox.
            max_file_mb: Largest file the code may write.
            tmp_mb: Size of each of its ``/tmp`` and ``/dev/shm`` (memory).
            cpu_seconds: CPU time of one kernel process over its whole life, a backstop
                behind the per-execution wall-clock limit.
            uid_base: First host uid of the code when the server runs as root.
        """
        super().__init__(
            root,
            timeout_seconds=timeout_seconds,
            idle_seconds=idle_seconds,
            max_live=max_live,
            grace_seconds=grace_seconds,
            max_output_chars=max_output_chars,
        )
        self.environment = environment or default_environment()
        self.memory_mb = memory_mb
        self.max_processes = max_processes
        self.max_file_mb = max_file_mb
        self.tmp_mb = tmp_mb
        self.cpu_seconds = cpu_seconds
        self.uid_base = uid_base
        self.bwrap = shutil.which(bwrap) or bwrap
        self.privileged = os.geteuid() == 0

    def host_uid(self, slot: int) -> int:
        return self.uid_base + slot if self.privileged else os.geteuid()

    def prepare(self, workdir: Path, slot: int) -> None:
        if self.privileged:
            # The code runs as this slot's uid: the thread's files must be its own.
            files.chown_tree(workdir, self.host_uid(slot), self.host_uid(slot))
        os.chmod(workdir, 0o700)

    def file_owner(self, slot: int | None) -> tuple[int, int] | None:
        if not self.privileged or slot is None:
            return None  # a kernel started later gets the files with prepare()
        return (self.host_uid(slot), self.host_uid(slot))

    def driver_arguments(self) -> list[str]:
        return [
            *super().driver_arguments(),
            f"--memory-mb={self.memory_mb}",
            f"--processes={self.max_processes}",
            f"--file-mb={self.max_file_mb}",
            f"--cpu-seconds={self.cpu_seconds}",
            "--open-files=1024",
            "--nice=5",
            "--reap",
        ]

    def launch(self, workdir: Path, slot: int) -> Launch:
        python = self.environment / "bin" / "python"
        if not python.exists():
            raise FileNotFoundError(
                f"the sandbox's Python environment {self.environment} is missing: "
                "run scripts/ensure-sandbox"
            )
        tmp_bytes = str(self.tmp_mb * MIB)
        argv = [self.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net"]
        argv += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if self.privileged:
            argv += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            argv += ["--unshare-user", "--disable-userns"]
            argv += ["--uid", str(NOBODY), "--gid", str(NOBODY)]
        argv += ["--die-with-parent", "--new-session", "--ro-bind", "/usr", "/usr"]
        for name in _ROOT_LINKS:
            path = Path("/", name)
            if path.is_symlink():
                argv += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                argv += ["--ro-bind", str(path), str(path)]
        # bwrap would make the parents of mount points 0700, unreadable to the code.
        for parent in ("/etc", "/opt", "/mnt"):
            argv += ["--perms", "0755", "--dir", parent]
        argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        # fontconfig's settings, for the fonts matplotlib finds under /usr/share/fonts.
        argv += ["--ro-bind-try", "/etc/fonts", "/etc/fonts"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/tmp"]
        argv += ["--perms", "1777", "--size", tmp_bytes, "--tmpfs", "/dev/shm"]
        argv += ["--ro-bind", str(self.environment), VENV_MOUNT]
        argv += ["--ro-bind", str(GUEST_DIR), GUEST_MOUNT]
        argv += ["--bind", str(workdir), "/mnt/data", "--chdir", "/mnt/data"]
        argv += ["--remount-ro", "/", "--clearenv"]
        pass_fds: tuple[int, ...] = ()
        if (fd := seccomp.program_fd()) is not None:
            argv += ["--seccomp", str(fd)]
            pass_fds = (fd,)
        for name, value in guest_environment().items():
            argv += ["--setenv", name, value]
        argv.append("--")
        if self.privileged:
            uid = str(self.host_uid(slot))
            argv += ["/usr/bin/setpriv", "--reuid", uid, "--regid", uid, "--clear-groups"]
            argv += ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
        argv += [f"{VENV_MOUNT}/bin/python", f"{GUEST_MOUNT}/driver.py"]
        argv += self.driver_arguments()
        return Launch(argv, env={"PATH": "/usr/bin:/bin"}, pass_fds=pass_fds)


def unavailable_reason(environment: Path | None = None, bwrap: str = "bwrap") -> str | None:
    """Why bubblewrap sandboxes cannot run here, or None when they can (blocking: it runs
    bwrap once with the namespaces the sandbox uses)."""
    executable = shutil.which(bwrap)
    if executable is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    environment = environment or default_environment()
    if not (environment / "bin" / "python").exists():
        return (
            f"the sandbox's Python environment {environment} is missing: make it with "
            f"`scripts/ensure-sandbox {environment}` (in assistd's source tree), or point "
            "ASSISTD_SANDBOX_ENVIRONMENT at one"
        )
    if os.geteuid() == 0 and not Path("/usr/bin/setpriv").exists():
        return "setpriv (util-linux) is missing"
    argv = [executable, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    if os.geteuid() != 0:
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--perms", "1777", "--size", str(MIB), "--tmpfs", "/tmp"]  # bwrap >= 0.8
    for name in _ROOT_LINKS:
        path = Path("/", name)
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    argv += ["--", "/usr/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot run: {exc}"
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip()
        return f"bwrap cannot create the sandbox's namespaces: {message}"
    return None
