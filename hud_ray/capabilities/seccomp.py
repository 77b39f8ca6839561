"""The seccomp filter every sandboxed process runs under, as classic BPF.

It blocks what an agent never needs and what widens the kernel's attack surface or
leaves the sandbox: new or other namespaces (``unshare``, ``setns``, ``clone`` with
namespace flags, ``clone3``), mounts, ``ptrace`` and cross-process memory access,
keyrings, ``bpf``, ``perf_event_open``, kernel modules, ``kexec``, ``io_uring``,
``userfaultfd``, file handles, clocks, swap and reboot. Blocked calls fail with
``EPERM`` (``clone3`` with ``ENOSYS`` so libc falls back to ``clone``, where the
flags are checked); a foreign syscall ABI (x32, i386) kills the process.

The program is assembled here (no libseccomp needed): ``program()`` returns the raw
``struct sock_filter`` array that ``bwrap --seccomp FD`` reads and the spawner
(``_spawner.py``) loads into every command it starts.
"""

from __future__ import annotations

import errno
import os
import platform
import struct

from hud_ray.errors import CapabilityError

_AUDIT_ARCH_X86_64 = 0xC000003E
_X32_SYSCALL_BIT = 0x40000000

#: x86_64 syscall numbers of everything the filter refuses.
BLOCKED_X86_64 = {
    "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155,
    "chroot": 161, "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311,
    "pidfd_getfd": 438, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321,
    "perf_event_open": 298, "userfaultfd": 323, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "kexec_load": 246,
    "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "swapon": 167, "swapoff": 168, "reboot": 169, "acct": 163, "iopl": 172, "ioperm": 173,
    "syslog": 103, "quotactl": 179, "settimeofday": 164, "clock_settime": 227,
    "adjtimex": 159, "clock_adjtime": 305, "vhangup": 153, "lookup_dcookie": 212,
}
_CLONE, _CLONE3 = 56, 435
#: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 \
    | 0x20000000 | 0x40000000 | 0x00000080

_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL_PROCESS = 0x7FFF0000, 0x80000000
_ERRNO = 0x00050000


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k)


def program() -> bytes:
    """The filter as a ``struct sock_filter[]`` (x86_64 only)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        raise CapabilityError(f"the sandbox's seccomp filter supports x86_64 only, not "
                              f"{platform.machine()}")
    blocked = sorted(BLOCKED_X86_64.values())
    # Layout: arch check, nr load, x32 check, one jeq per blocked nr, clone3, clone,
    # allow, [clone flag check], deny-EPERM, deny-ENOSYS, kill.
    body: list[tuple[int, int, int | str, int | str]] = []
    body.append((_LD_W_ABS, 4, 0, 0))                          # A = arch
    body.append((_JEQ, _AUDIT_ARCH_X86_64, 0, "kill"))
    body.append((_LD_W_ABS, 0, 0, 0))                          # A = nr
    body.append((_JGE, _X32_SYSCALL_BIT, "kill", 0))
    for nr in blocked:
        body.append((_JEQ, nr, "eperm", 0))
    body.append((_JEQ, _CLONE3, "enosys", 0))
    body.append((_JEQ, _CLONE, 0, "allow"))
    body.append((_LD_W_ABS, 16, 0, 0))                         # A = low word of flags
    body.append((_JSET, NAMESPACE_FLAGS, "eperm", "allow"))
    labels = {"allow": len(body), "eperm": len(body) + 1, "enosys": len(body) + 2,
              "kill": len(body) + 3}
    tail = [(_RET, _ALLOW), (_RET, _ERRNO | errno.EPERM), (_RET, _ERRNO | errno.ENOSYS),
            (_RET, _KILL_PROCESS)]
    out = []
    for i, (code, k, jt, jf) in enumerate(body):
        def rel(target: int | str, i: int = i) -> int:
            return target if isinstance(target, int) else labels[target] - i - 1
        out.append(_insn(code, k, rel(jt), rel(jf)))
    out += [_insn(code, k) for code, k in tail]
    return b"".join(out)


def memfd() -> int:
    """An inheritable fd holding the program (for ``bwrap --seccomp FD``)."""
    fd = os.memfd_create("hud-ray-seccomp", 0)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
