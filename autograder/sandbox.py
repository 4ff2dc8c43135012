"""Student kernels in a bubblewrap sandbox, with limits that hold for the notebook as a whole.

A graded kernel runs as `bwrap [view] python -m ipykernel_launcher -f CONNECTION_FILE` (SandboxKernelManager):

- namespaces: new user, PID, network, IPC, UTS and cgroup namespaces, uid/gid 65534, a new session,
  --die-with-parent. The kernel sees only its own processes, so it cannot signal the grader, its workers or other
  students' kernels, and when the kernel ends the PID namespace ends with it: nothing it started (setsid included)
  outlives it. Without a network it talks to the grader over ZMQ's IPC transport: unix sockets in a private
  runtime folder bound at the same path.
- the view: read-only /usr, the Python interpreter and the virtual environment, and under /course the course
  package (`linattn_ref/`, `autograder/` with `checks/answer_keys/` emptied); a private writable home (the
  working folder, a copy of the files next to the notebook) and /tmp. Inside the user namespace uid 65534 maps
  back to the grader's own uid, so what is not bound is what protects the grader: solutions/, the grading folder
  (gradebook, submitted/, other students), the repository and the instructor's home are simply not there.
- limits for the notebook as a whole: a cgroup (v2, else v1) bounds the total memory (no swap) and the number of
  processes of everything in the sandbox; RLIMIT_AS (per process) turns a plain memory bomb into a MemoryError,
  RLIMIT_FSIZE bounds each file written. Where no cgroup can be created, only the per-process limits hold (grade
  reports it).
- the kernel's own fd 1 and fd 2 go to a log file, never to the notebook (ipykernel's capture_fd_output is off):
  `os.write(2, ...)` or a subprocess's stderr cannot put text in a graded cell's output.

`exchange_dir`, when set, is bound read-write at its own path and exported as AUTOGRADER_EXCHANGE: the grader's
channel for inputs and outputs that are checked outside the kernel. `linattn_ref_dir` picks the linattn_ref
tree the sandbox shows. With `sandboxed = False` (grade --no-sandbox) the kernel runs as the grader, with the
same cgroup limits, the same fd-2 rule and AUTOGRADER_EXCHANGE.
"""
import ctypes
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from functools import partial
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from traitlets import Bool, Integer, Unicode

REPO = Path(__file__).resolve().parents[1]
COURSE = "/course"  # where linattn_ref and autograder appear inside the sandbox (it is the kernel's PYTHONPATH)
HOME = "/home/student"  # the kernel's private working folder
NOBODY = 65534
PASSED_ENV = re.compile(r"(OMP|MKL|OPENBLAS|TORCH|TRITON)_\w+|LANG|LC_ALL|TZ|MPLBACKEND")
ENABLE = ("install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`, or `make setup` as root) and allow"
          " unprivileged user namespaces (`sysctl -w kernel.unprivileged_userns_clone=1` and"
          " `user.max_user_namespaces` > 0; in Docker, run the container with `--security-opt seccomp=unconfined"
          " --security-opt apparmor=unconfined` or `--privileged`)")


def python_paths():
    """{path in the sandbox: host path} the interpreter needs: the base installation and the virtual environment
    (which may be a symlink: bound at the path this process knows it by)."""
    paths = {str(Path(sys.base_prefix).resolve()): str(Path(sys.base_prefix).resolve())}
    if sys.prefix != sys.base_prefix:
        paths[os.path.abspath(sys.prefix)] = str(Path(sys.prefix).resolve())
    return paths


def bwrap_args(home, runtime, exchange="", linattn_ref=REPO / "linattn_ref", answer_keys=False):
    """The bwrap command line (without the kernel's own command) for one kernel."""
    # /tmp first: binds below it (a repository or venv that lives in /tmp) must land on the fresh tmpfs, not under it
    args = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--uid", str(NOBODY), "--gid",
            str(NOBODY), "--clearenv", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64"):  # merged-/usr systems link these into /usr
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ("ld.so.cache", "localtime"):
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for inside, host in python_paths().items():
        args += ["--ro-bind", host, inside]
    args += ["--ro-bind", str(Path(linattn_ref).resolve()), f"{COURSE}/linattn_ref",
             "--ro-bind", str(REPO / "autograder"), f"{COURSE}/autograder"]
    if not answer_keys:  # an empty, read-only folder over the keys
        args += ["--tmpfs", f"{COURSE}/autograder/checks/answer_keys",
                 "--remount-ro", f"{COURSE}/autograder/checks/answer_keys"]
    args += ["--bind", str(home), HOME, "--bind", str(runtime), str(runtime), "--chdir", HOME]
    env = {"HOME": HOME, "USER": "student", "LOGNAME": "student", "TMPDIR": "/tmp", "PYTHONPATH": COURSE,
           "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
           **{k: v for k, v in os.environ.items() if PASSED_ENV.fullmatch(k)}}
    if exchange:
        args += ["--bind", str(exchange), str(exchange)]
        env["AUTOGRADER_EXCHANGE"] = str(exchange)
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args


def problem():
    """Why student kernels cannot be sandboxed on this machine (None: they can)."""
    if not shutil.which("bwrap"):
        return f"bubblewrap (bwrap) is not installed. To grade in a sandbox, {ENABLE}."
    with tempfile.TemporaryDirectory(prefix="autograder-bwrap-check-") as tmp:
        cmd = [*bwrap_args(tmp, tmp), sys.executable, "-c", "import autograder, os; os.listdir('/course/linattn_ref')"]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return "bubblewrap did not start a Python in 120 s"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1]
        return f"bubblewrap cannot run here ({why}). To grade in a sandbox, {ENABLE}."
    return None


# ---------------------------------------------------------------------------------------------------------------
# cgroups: limits for all the processes of one kernel together


def _v2_base():
    base = Path("/sys/fs/cgroup")
    if not (base / "cgroup.controllers").exists():
        return None
    try:  # the root of a (container's) cgroup namespace may hand memory and pids down; elsewhere this fails
        (base / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError:
        pass
    return base if {"memory", "pids"} <= set((base / "cgroup.subtree_control").read_text().split()) else None


class Cgroup:
    """A cgroup for one kernel: total memory (swap included) and process count. Cgroup.create() is None where the
    machine gives none (no cgroup file system we may write)."""

    def __init__(self, dirs, settings):
        self.dirs = dirs
        for folder, values in zip(dirs, settings):
            for name, value in values:
                if (folder / name).exists():
                    (folder / name).write_text(str(value))

    @classmethod
    def create(cls, memory_mb, max_processes):
        name = f"autograder-{uuid.uuid4().hex[:12]}"
        memory = memory_mb * 2**20 if memory_mb > 0 else "max"
        try:
            v2 = _v2_base()
            if v2:
                (v2 / name).mkdir()
                return cls([v2 / name], [[("memory.max", memory), ("memory.swap.max", 0),
                                          ("pids.max", max_processes)]])
            v1 = Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup/pids")
            if all((d / "cgroup.procs").exists() for d in v1):
                dirs = [d / name for d in v1]
                for d in dirs:
                    d.mkdir()
                memory = memory if memory_mb > 0 else -1
                return cls(dirs, [[("memory.limit_in_bytes", memory), ("memory.memsw.limit_in_bytes", memory)],
                                  [("pids.max", max_processes)]])
        except OSError:
            return None
        return None

    @classmethod
    def usable(cls):
        """Whether this machine gives the grader cgroups to limit notebooks with."""
        cgroup = cls.create(256, 64)
        if cgroup:
            cgroup.remove()
        return cgroup is not None

    def join(self):
        """Move the calling process in (run in the kernel's process before it starts: Popen's preexec_fn)."""
        for d in self.dirs:
            with open(d / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def pids(self):
        found = set()
        for d in self.dirs:
            try:
                found |= {int(p) for p in (d / "cgroup.procs").read_text().split()}
            except OSError:
                pass
        return found

    def remove(self):
        """Kill whatever is left in it, then remove it."""
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            os.sched_yield()
        for d in self.dirs:
            try:
                d.rmdir()
            except OSError:
                pass


def _die_with_parent(parent):
    """SIGKILL this process when the process that started it ends, however it ends (Linux PR_SET_PDEATHSIG), also
    when it ended before this line ran (bwrap's own --die-with-parent misses that race: a leaked kernel was seen
    after a worker died while starting one)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def _limit_process(parent, cgroup, address_space, file_size):
    """Run in the kernel's process just before it starts (Popen's preexec_fn): limits every process below it."""
    _die_with_parent(parent)
    if cgroup:
        cgroup.join()
    if address_space:
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class SandboxKernelManager(AsyncKernelManager):
    """A kernel manager whose kernels run in the sandbox described above (or, unsandboxed, under its limits)."""

    sandboxed = Bool(True, help="Run the kernel in bubblewrap (False: as the grader, limits only).").tag(config=True)
    exchange_dir = Unicode("", help="A host folder bound read-write at its own path and exported as"
                           " AUTOGRADER_EXCHANGE ('' = none).").tag(config=True)
    linattn_ref_dir = Unicode(str(REPO / "linattn_ref"), help="The linattn_ref tree the sandbox shows.").tag(
        config=True)
    answer_keys_visible = Bool(False, help="Show autograder/checks/answer_keys/ in the sandbox.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Memory of all the kernel's processes together, MiB (0: none).").tag(
        config=True)
    max_processes = Integer(256, help="Processes and threads of the kernel together.").tag(config=True)
    max_file_mb = Integer(512, help="Size limit of each file the kernel writes, MiB.").tag(config=True)

    cgroup = None
    runtime = None

    async def _async_pre_start_kernel(self, **kw):
        self._make_runtime(kw.get("cwd"))
        return await super()._async_pre_start_kernel(**kw)

    def _make_runtime(self, cwd):
        """A private folder for this kernel: the connection file, its sockets, its log and (sandboxed) its home."""
        if self.runtime:  # a restart of the same manager
            self._release()
        self.runtime = Path(tempfile.mkdtemp(prefix="autograder-kernel-"))
        self.connection_file = str(self.runtime / "kernel.json")
        if self.sandboxed:
            self.transport, self.ip = "ipc", str(self.runtime / "zmq")
            self.kernel_spec.interrupt_mode = "message"  # a signal would reach bwrap, not the kernel
            home = self.runtime / "home"
            home.mkdir()
            for path in Path(cwd or ".").iterdir() if cwd else ():  # files next to the notebook, not notebooks
                if path.is_file() and path.suffix != ".ipynb":
                    shutil.copy(path, home / path.name)
        self.cgroup = Cgroup.create(self.memory_limit_mb, self.max_processes)

    def format_kernel_cmd(self, extra_arguments=None):
        cmd = [*super().format_kernel_cmd(extra_arguments), "--IPKernelApp.capture_fd_output=False"]
        if not self.sandboxed:
            return cmd
        return [*bwrap_args(self.runtime / "home", self.runtime, self.exchange_dir, self.shown_linattn_ref(),
                            self.answer_keys_visible), *cmd]

    def shown_linattn_ref(self):
        """The stripped copy the verdict wrote into the exchange folder (its answers refuse to run), if any: the
        real tree must then stay out of view, or a kernel could load the answers from it by path."""
        stripped = Path(self.exchange_dir) / "lib" / "linattn_ref" if self.exchange_dir else None
        return str(stripped) if stripped and stripped.is_dir() else self.linattn_ref_dir

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        self.log_file = open(self.runtime / "kernel.log", "ab")  # the kernel's fd 1 and 2 (capped by FSIZE)
        kw.update(stdout=self.log_file, stderr=self.log_file,
                  preexec_fn=partial(_limit_process, os.getpid(), self.cgroup, self.memory_limit_mb * 2**20,
                                     self.max_file_mb * 2**20))
        if self.exchange_dir and not self.sandboxed:  # lib/: linattn_ref without the answers (autograder.verdict)
            env = kw.get("env", os.environ)
            path = os.pathsep.join(p for p in (str(Path(self.exchange_dir) / "lib"), env.get("PYTHONPATH")) if p)
            kw["env"] = {**env, "AUTOGRADER_EXCHANGE": self.exchange_dir, "PYTHONPATH": path}
        try:
            return await super()._async_launch_kernel(kernel_cmd, **kw)
        finally:
            self.log_file.close()  # the kernel keeps its own copy

    def _release(self):
        if self.cgroup:
            self.cgroup.remove()
            self.cgroup = None
        if self.runtime:
            shutil.rmtree(self.runtime, ignore_errors=True)
            self.runtime = None

    async def _async_cleanup_resources(self, restart=False):
        await super()._async_cleanup_resources(restart=restart)
        self._release()

    cleanup_resources = _async_cleanup_resources  # AsyncKernelManager binds the base class's under this name

    def __del__(self):
        self._release()
