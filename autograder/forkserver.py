"""Warm kernels for `progress`: each notebook still gets a fresh kernel process, forked from one that has already
imported what the course's kernels import.

Starting a kernel costs about 2 s of CPU on a small laptop, nearly all of it importing ipykernel, torch, numpy,
matplotlib, ipywidgets, linattn_ref and autograder.checks; `progress` starts eleven for the course. A fork
server (`python -m autograder.forkserver`, one per worker process, started with the kernels' environment)
imports them once, computes nothing (no tensor is made before a fork, so no thread pool exists) and then forks
a kernel per request:

    server -- fork --> middle -- fork --> kernel (middle exits at once)

The worker is a child subreaper (Linux PR_SET_CHILD_SUBREAPER), so the kernel, orphaned when the middle process
exits, becomes the worker's own child: the worker waits for it, reads its exit status and signals its process
group exactly as it would a kernel started with Popen (ForkedKernel stands in for the Popen object). The kernel
process then sets itself up as `python -m ipykernel_launcher -f CONNECTION_FILE ...` would be: setsid() (its own
process group), the request's working folder (also in sys.path, where the server had its own), environment
(JPY_PARENT_PID included, also in the server's, as jupyter_client's launcher sets it) and argv; stdin
from /dev/null, fd 1 and 2 to the kernel's log, no other inherited file; the worker's limits (autograder.sandbox:
dies with the worker, cgroup, RLIMIT_AS, RLIMIT_FSIZE); torch's and numpy's global generators seeded from the
OS, as a new process seeds them (Python's `random` reseeds itself after a fork). Then it runs
ipykernel_launcher as __main__ and ends as an interpreter does: non-daemon threads joined, atexit functions run.

Every kernel is a copy of the untouched warm process: nothing one notebook does (globals, monkeypatched modules,
torch's default dtype) reaches another. Triton is not imported ahead: notebook 09 sets TRITON_INTERPRET before
its first import of triton. Only unsandboxed kernels with the course's own interpreter are forked
(ForkingKernelManager); anything else, or a server that cannot start, gets a kernel launched the usual way.
"""
import atexit
import ctypes
import importlib
import multiprocessing.util
import os
import pickle
import runpy
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from functools import partial
from pathlib import Path

from .sandbox import SandboxKernelManager, _limit_process


# What a course notebook imports in its first cell, imported once by the server (triton left out: see above).
def _viz_modules():
    """The notebooks' picture modules, found as they are named (linattn_ref.viz.nbNN_topic), but those that import
    triton (see above)."""
    folder = Path(__file__).resolve().parent.parent / "linattn_ref" / "viz"
    return tuple(f"linattn_ref.viz.{p.stem}" for p in sorted(folder.glob("nb*.py")) if "triton" not in p.read_text())


WARM = ("ipykernel.kernelapp", "ipykernel.ipkernel", "numpy", "torch", "matplotlib", "matplotlib.pyplot",
        "ipywidgets", "linattn_ref", "autograder.checks", *_viz_modules())
INLINE = "module://matplotlib_inline.backend_inline"  # what ipykernel sets MPLBACKEND to when it is unset
PR_SET_CHILD_SUBREAPER = 36
REPARENT_WAIT_S = 10  # longest a forked kernel waits to become the worker's child


# ---------------------------------------------------------------------------------------------------------------
# messages: a length, then a pickle


def _send(sock, obj):
    data = pickle.dumps(obj)
    sock.sendall(struct.pack("!I", len(data)) + data)


def _recv(sock):
    def exactly(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("the other end closed the channel")
            buf += chunk
        return buf

    return pickle.loads(exactly(struct.unpack("!I", exactly(4))[0]))


# ---------------------------------------------------------------------------------------------------------------
# the server's side


def serve(fd, parent):
    """Import WARM, say so on the socket `fd`, then fork a kernel per request until the channel closes."""
    sock = socket.socket(fileno=fd)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: end with the worker
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        return
    os.environ.setdefault("MPLBACKEND", INLINE)  # before matplotlib reads it, as ipykernel does before any cell
    for name in WARM:
        importlib.import_module(name)
    _send(sock, {"ready": os.getpid()})
    while True:
        try:
            request = _recv(sock)
        except EOFError:
            os._exit(0)  # the worker is done: no interpreter teardown to wait for
        try:
            _send(sock, {"pid": _fork_kernel(request)})
        except Exception as err:
            _send(sock, {"error": f"{type(err).__name__}: {err}"})


def _fork_kernel(request):
    """Fork a kernel for `request` through a middle process that exits at once; return the kernel's pid once the
    middle process is gone (so the kernel already is the subreaper's child)."""
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    middle = os.fork()
    if middle == 0:
        try:
            os.close(read_end)
            kernel = os.fork()
            if kernel == 0:
                _become_kernel(request)  # never returns
            os.write(write_end, str(kernel).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        answer = f.read()
    os.waitpid(middle, 0)
    if not answer:
        raise RuntimeError("the middle process did not fork a kernel")
    return int(answer)


def _become_kernel(request):
    """In the forked kernel: become `python -m ipykernel_launcher ...` as launched by the worker, run it, exit."""
    code = 1
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        for fd in map(int, os.listdir("/proc/self/fd")):  # the server's channel, the pipe, the log and null
            if fd > 2:
                try:
                    os.close(fd)
                except OSError:
                    pass
        os.setsid()
        deadline = time.monotonic() + REPARENT_WAIT_S
        while os.getppid() != request["parent"]:
            if time.monotonic() > deadline:
                os._exit(1)
            time.sleep(0.001)
        request["limits"]()  # autograder.sandbox._limit_process: dies with the worker, cgroup, rlimits
        home = os.getcwd()  # the server's: sys.path holds it where a new process holds its own working folder
        os.chdir(request["cwd"])
        cwd = os.getcwd()
        sys.path[:] = [cwd + p[len(home):] if p == home or p.startswith(home + os.sep) else p for p in sys.path]
        os.environ.clear()
        os.environ.update(request["env"])
        # A new process seeds these from the OS: reseed them, or every kernel would draw the server's numbers
        sys.modules["torch"].default_generator.seed()  # (CUDA's are seeded when CUDA starts, after the fork)
        if "numpy.random" in sys.modules:  # (imported by none of WARM today: then it seeds itself when imported)
            sys.modules["numpy.random"].seed()
        sys.argv = [request["cmd"][0], *request["cmd"][3:]]  # run_module puts the launcher's path in argv[0]
        try:
            runpy.run_module("ipykernel_launcher", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
            if not isinstance(exit_.code, (int, type(None))):
                print(exit_.code, file=sys.stderr)
        threading._shutdown()  # as the interpreter ends: wait for non-daemon threads, then atexit
        atexit._run_exitfuncs()
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


# ---------------------------------------------------------------------------------------------------------------
# the worker's side


def _become_subreaper():
    return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1) == 0


class ForkServer:
    """A running server (see the module docstring), started with the environment `env`."""

    def __init__(self, env):
        if not _become_subreaper():
            raise OSError("this system cannot make the worker a child subreaper")
        self.env = dict(env)
        self.home = tempfile.mkdtemp(prefix="autograder-forkserver-")  # its cwd: sys.path[0] while it imports
        ours, theirs = socket.socketpair()
        self.errors = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "autograder.forkserver", str(theirs.fileno()), str(os.getpid())],
            pass_fds=[theirs.fileno()], env=with_parent(self.env), cwd=self.home, stdin=subprocess.DEVNULL,
            stdout=self.errors, stderr=self.errors)
        theirs.close()
        self.sock = ours
        self.ready = False
        self.lock = threading.Lock()

    def _wait_ready(self):
        if not self.ready:
            try:
                _recv(self.sock)
            except EOFError:
                self.errors.seek(0)
                why = self.errors.read().decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
                raise RuntimeError(f"the fork server did not start: {why[0]}") from None
            self.ready = True

    def spawn(self, cmd, env, cwd, log, limits):
        """The pid of a new kernel, a child of this process, running `cmd` (python -m ipykernel_launcher ...)."""
        with self.lock:
            self._wait_ready()
            _send(self.sock, {"cmd": list(cmd), "env": dict(env), "cwd": str(cwd), "log": str(log),
                              "limits": limits, "parent": os.getpid()})
            answer = _recv(self.sock)
        if "error" in answer:
            raise RuntimeError(f"the fork server could not fork a kernel: {answer['error']}")
        return answer["pid"]

    def close(self):
        """Stop the server (it ends when its channel closes) and wait for it; kernels it forked live on."""
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.errors.close()
        try:
            os.rmdir(self.home)
        except OSError:
            pass


_server = None  # this process's server, started by the first forked kernel (or by prestart)
_failed = None  # why this process's server failed: its kernels are launched the usual way from then on


def server_for(env):
    """This process's ForkServer for kernels with the environment `env` (a new one if `env` changed), or None
    where no server can run."""
    global _server
    if _failed:
        return None
    if _server is not None and _server.env != dict(env):
        _server.close()
        _server = None
    if _server is None:
        try:
            _server = ForkServer(env)
        except OSError as err:
            give_up(err)
            return None
        atexit.register(_server.close)
        multiprocessing.util.Finalize(_server, _server.close, exitpriority=0)  # a pool's worker skips atexit
    return _server


def with_parent(env):
    """`env` with what jupyter_client's launcher adds for a kernel it starts: JPY_PARENT_PID, this process (ipykernel
    reads it when ipykernel.kernelapp is imported, in the server, and watches that process)."""
    return {**env, "JPY_PARENT_PID": str(os.getpid())}


def kernel_env():
    """The environment jupyter_client gives a python kernel started from this process (its provisioner's rule)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONEXECUTABLE"}


def give_up(why):
    """No more forked kernels in this process (`why` is kept in `_failed`)."""
    global _server, _failed
    _failed = str(why)
    print(f"progress: kernels start the usual way from now on (slower): the fork server failed: {why}",
          file=sys.stderr)
    if _server is not None:
        _server.close()
        _server = None


def prestart(env):
    """Start this process's server ahead of its first kernel (a worker's initializer): it imports while the
    worker reads its first notebook."""
    server_for(env)


class ForkedKernel:
    """The Popen-like handle of a forked kernel (a child of this process), as jupyter_client's LocalProvisioner
    uses it."""

    stdin = stdout = stderr = None

    def __init__(self, pid):
        self.pid, self.returncode = pid, None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # waited for elsewhere
                self.returncode = -signal.SIGKILL
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"kernel {self.pid}", timeout)
            time.sleep(0.01)
        return self.returncode

    def send_signal(self, signum):
        if self.poll() is None:
            os.kill(self.pid, signum)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


class ForkingKernelManager(SandboxKernelManager):
    """SandboxKernelManager (unsandboxed: the worker's limits, the kernel's fd 1 and 2 to its log) whose kernels
    are forked from this process's ForkServer when they can be."""

    def _forkable(self, kernel_cmd):
        return (not self.sandboxed and not self.exchange_dir and len(kernel_cmd) >= 3
                and kernel_cmd[:3] == [sys.executable, "-m", "ipykernel_launcher"])

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        env = kw.get("env") or dict(os.environ)
        server = server_for(env) if self._forkable(kernel_cmd) else None
        if server is None:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        cwd = kw.get("cwd") or os.getcwd()
        limits = partial(_limit_process, os.getpid(), self.cgroup, self.memory_limit_mb * 2**20,
                         self.max_file_mb * 2**20)
        try:
            pid = server.spawn(kernel_cmd, with_parent(env), cwd, self.runtime / "kernel.log", limits)
        except (OSError, EOFError, RuntimeError) as err:  # the server is gone or broken: the usual way, from now on
            give_up(err)
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        provisioner = self.provisioner
        provisioner.process, provisioner.pid, provisioner.pgid = ForkedKernel(pid), pid, pid
        provisioner.cwd = cwd
        self._reconcile_connection_info(provisioner.connection_info)


if __name__ == "__main__":
    serve(int(sys.argv[1]), int(sys.argv[2]))
