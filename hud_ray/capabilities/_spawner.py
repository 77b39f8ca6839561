"""The sandbox spawner: a small host process that starts every command inside a sandbox.

Run as a script (standard library only, so it starts small and forks fast):
``python -I -S _spawner.py CONTROL_FD SECCOMP_FD``. One per ``Workspace``. For each
request (JSON plus fds over a unix socket: stdio, a status pipe, the sandbox's
namespace and root fds, extra fds) it forks a middle process that joins the sandbox's
cgroups and namespaces, drops the bounding set, becomes the agent uid, sets
``no_new_privs`` and the seccomp filter, and forks the command into the sandbox's pid
namespace; the middle writes the command's exit code to the status pipe. Forking the
actor itself (a large Python process) for each command would cost far more.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys

_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _PR_CAPBSET_DROP = 38, 22, 2, 24
_SO_SNDBUFFORCE, _SO_RCVBUFFORCE = 32, 33
_NS_FLAGS = (os.CLONE_NEWIPC, os.CLONE_NEWUTS, os.CLONE_NEWNET, os.CLONE_NEWPID,
             os.CLONE_NEWCGROUP, os.CLONE_NEWNS, os.CLONE_NEWUSER)  # the user ns last
_HIGH = 512
#: A request's size limit (argv and environment; the kernel's own limit for one
#: argument is 128 KiB). Both ends set their socket buffers to fit it.
MAX_REQUEST = 4 << 20


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _middle(req: dict, fds: list[int], libc: ctypes.CDLL, prog: _Fprog) -> None:
    """Runs in the forked middle process; never returns."""
    stdin, stdout, stderr, status = fds[:4]
    ns = fds[4:4 + len(_NS_FLAGS)]
    root = fds[4 + len(_NS_FLAGS)]
    extra = fds[5 + len(_NS_FLAGS):]
    code = 255
    try:
        os.setsid()
        pid = str(os.getpid()).encode()
        for path in req["procs"]:
            fd = os.open(path, os.O_WRONLY)
            os.write(fd, pid)
            os.close(fd)
        for fd, flag in zip(ns, _NS_FLAGS, strict=True):
            os.setns(fd, flag)
        os.fchdir(root)
        os.chroot(".")
        for cap in range(64):
            libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
        uid = req["uid"]
        os.setgroups(req["groups"])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        os.umask(req["umask"])
        try:
            os.chdir(req["cwd"])
        except OSError:
            os.chdir("/")
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "no_new_privs")
        if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0):
            raise OSError(ctypes.get_errno(), "seccomp")
        child = os.fork()  # into the pid namespace: setns only moves children
        if child == 0:
            wanted = [stdin, stdout, stderr, *extra]
            high = [os.dup2(fd, _HIGH + i) for i, fd in enumerate(wanted)]
            for i, fd in enumerate(high):
                os.dup2(fd, i)  # inheritable
            os.closerange(len(wanted), 65536)
            try:
                os.execvpe(req["argv"][0], req["argv"], req["env"])
            except OSError as e:
                os.write(2, f"{req['argv'][0]}: {e.strerror}\n".encode())
                os._exit(127)
        for fd in (stdin, stdout, *extra, *ns, root):
            os.close(fd)
        while True:
            try:
                _, st = os.waitpid(child, 0)
                break
            except InterruptedError:
                continue
        code = os.waitstatus_to_exitcode(st)
    except OSError as e:
        os.write(stderr, f"cannot start a process in the sandbox (it has ended or hit its "
                         f"process limit): {e}\n".encode())
        code = 255
    os.write(status, str(code).encode())
    os._exit(0)


def serve(control_fd: int, seccomp_fd: int) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                           ctypes.c_ulong]
    with os.fdopen(seccomp_fd, "rb") as f:
        code = ctypes.create_string_buffer(f.read())
    prog = _Fprog(len(code.raw) // 8, ctypes.cast(code, ctypes.c_void_p).value)
    sock = socket.socket(fileno=control_fd)
    sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, MAX_REQUEST * 2)
    running: dict[int, int] = {}  # request id -> middle pid (not yet reaped)
    while True:
        ready, _, _ = select.select([sock], [], [], 0.5)
        while running:  # reap finished middles
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            running = {k: v for k, v in running.items() if v != pid}
        if not ready:
            continue
        data, fds, flags, _ = socket.recv_fds(sock, MAX_REQUEST, 64)
        if not data:
            return  # the actor is gone
        try:
            req = json.loads(data)
            if flags & socket.MSG_TRUNC or not isinstance(req, dict):
                raise ValueError("request too large")
        except ValueError as e:
            for fd in fds:
                os.close(fd)
            sock.sendall(json.dumps({"id": None, "error": f"bad request: {e}"}).encode())
            continue
        if "kill" in req:
            target = running.get(req["kill"])
            if target is not None:
                try:
                    os.killpg(target, req.get("signal", signal.SIGKILL))
                except ProcessLookupError:
                    pass
            continue
        try:
            middle = os.fork()
        except OSError as e:
            for fd in fds:
                os.close(fd)
            sock.sendall(json.dumps({"id": req["id"], "error": str(e)}).encode())
            continue
        if middle == 0:
            sock.close()
            _middle(req, fds, libc, prog)
        for fd in fds:
            os.close(fd)
        running[req["id"]] = middle
        sock.sendall(json.dumps({"id": req["id"], "pid": middle}).encode())


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
