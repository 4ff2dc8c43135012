"""nbgrader's Execute preprocessor, made to survive whatever a submission does to its kernel.

nbgrader 0.9.6 on its own:
- a cell that loops past `c.Execute.timeout` is interrupted, scores 0, and the notebook goes on (fine);
- a cell that kills the kernel (os._exit, a segfault, the OOM killer) raises DeadKernelError, and a cell that
  ignores the interrupt raises CellTimeoutError: either one fails the whole submission, which keeps no score;
- a cell that prints megabytes on one line keeps them all (nbgrader limits lines, not characters), in the
  autograded notebook and the feedback.

ResilientExecute gives the cell that lost the kernel an error output (so it scores 0), starts a new kernel,
replays the cells above it that ran cleanly (their outputs discarded) to rebuild the state, and goes on with
the next cell. The kernel runs under an address-space limit, so a memory bomb meets a MemoryError instead of
the machine's OOM killer, and each cell's printed text is capped.
"""
import copy
import os
import resource
import subprocess
import time
from queue import Empty

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

KERNEL_LOST = (DeadKernelError, CellTimeoutError)
POLL_SLICE_S = 0.5  # longest wait on a kernel socket before looking again for a message that is already there


def fix_lost_wakeups():
    """Wait on the kernel's sockets in slices of POLL_SLICE_S, so that a missed wake-up costs half a second.

    jupyter_client's async channel waits for a message with one `await socket.poll(timeout)`. Right after a
    widget cell (comm messages on iopub while the execute reply arrives on shell) that poll sometimes misses the
    reply already queued on the socket and only sees it when its timeout runs out: headless execution of
    notebooks 05 and 06 stalled for the whole cell timeout in about 1 run of 8, then went on without an error
    (nbclient issue 312). Polling again after each slice finds the queued reply. Applied once per process, to
    every client built on jupyter_client (nbclient, nbgrader's Validate and autograde, nbconvert).
    """
    from jupyter_client.channels import AsyncZMQSocketChannel

    original = AsyncZMQSocketChannel.get_msg
    if getattr(original, "sliced", False):
        return

    async def get_msg(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await original(self, timeout=POLL_SLICE_S if left is None else min(POLL_SLICE_S, left))
            except Empty:
                if left is not None and left <= POLL_SLICE_S:
                    raise

    get_msg.sliced, get_msg.__wrapped__ = True, original
    AsyncZMQSocketChannel.get_msg = get_msg
INCIDENTS = ("CellTimeoutError", "DeadKernelError", "NotRun")  # enames of the errors written here


def _limit_address_space(limit_bytes):
    """Run in the kernel's process just before it starts (Popen's preexec_fn)."""
    resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))


def error_output(ename, evalue):
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class ResilientExecute(Execute):
    """nbgrader's Execute that loses one cell, not the notebook, when the kernel dies or hangs (see above)."""

    memory_limit_mb = Integer(4096, help="Address-space limit of the kernel in MiB (0: none).").tag(config=True)
    max_output_chars = Integer(20_000, help="Characters of each output stream kept per cell.").tag(config=True)
    max_kernel_losses = Integer(5, help="Cells that may lose the kernel before the rest is not run.").tag(
        config=True)
    quiet_kernel = Bool(False, help="Send the kernel's own log (stderr) to /dev/null.").tag(config=True)
    exchange_dir = Unicode("", help="Folder shared with the kernel as AUTOGRADER_EXCHANGE: the grader's cases in,"
                           " the kernel's observations out (see autograder.verdict); empty: none.").tag(config=True)

    def preprocess(self, nb, resources=None, km=None):
        fix_lost_wakeups()
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._stream_chars = {}
        lost = set()  # indices of the cells that killed or hung the kernel: never run again
        start = 0
        while start < len(nb.cells):
            start = self._run_from(start, lost, resources)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def _kernel_options(self):
        """Keyword arguments that reach the Popen of the kernel."""
        options = {"stderr": subprocess.DEVNULL} if self.quiet_kernel else {}
        if self.memory_limit_mb > 0:
            options["preexec_fn"] = lambda: _limit_address_space(self.memory_limit_mb * 2**20)
        if self.exchange_dir:  # lib/: linattn_ref without the answers (autograder.verdict writes it)
            lib = os.path.join(self.exchange_dir, "lib")
            path = os.pathsep.join(p for p in (lib, os.environ.get("PYTHONPATH")) if p)
            options["env"] = {**os.environ, "AUTOGRADER_EXCHANGE": self.exchange_dir, "PYTHONPATH": path}
        return options

    def _run_from(self, start, lost, resources):
        """Start a kernel, replay the clean cells before `start`, run the rest; return where to go on from."""
        if len(lost) >= self.max_kernel_losses:  # give up on the rest without starting another kernel
            for cell in self.nb.cells[start:]:
                if cell.cell_type == "code":
                    cell.outputs = [error_output("NotRun", f"not run: the kernel was lost {len(lost)} times above")]
            return len(self.nb.cells)
        self.shutdown_kernel = "graceful"
        with self.setup_kernel(**self._kernel_options()):
            info = self.wait_for_reply(self.kc.kernel_info())
            self.nb.metadata["language_info"] = info["content"]["language_info"]
            for index in range(start):
                if index in lost or self.nb.cells[index].cell_type != "code":
                    continue
                original = self.nb.cells[index]
                try:
                    self.execute_cell(copy.deepcopy(original), index, store_history=False)
                except KERNEL_LOST:  # a cell that behaved the first time but not on replay
                    lost.add(index)
                    self.shutdown_kernel = "immediate"
                    return start
                finally:  # nbclient puts the executed copy in the notebook: keep the first run's outputs and count
                    self.nb.cells[index] = original  # (autograder.verdict reads the records by that count)
            for index in range(start, len(self.nb.cells)):
                cell = self.nb.cells[index]
                try:
                    self.preprocess_cell(cell, resources, index)
                except KERNEL_LOST as err:
                    lost.add(index)
                    cell.outputs.append(self._lost_kernel_output(err))
                    self.shutdown_kernel = "immediate"  # a hung kernel would not answer a polite shutdown
                    return index + 1
        return len(self.nb.cells)

    def _lost_kernel_output(self, err):
        if isinstance(err, DeadKernelError):
            return error_output("DeadKernelError", "the kernel died while running this cell (it crashed, exited,"
                                " or ran out of memory); it was restarted for the cells below")
        return error_output("CellTimeoutError", f"this cell ran past the {self.timeout} s time limit and did not stop"
                            " when interrupted; the kernel was restarted for the cells below")

    def output(self, outs, msg, display_id, cell_index):
        """Keep at most max_output_chars of each stream of one execution (stderr always leaves a trace)."""
        if msg["msg_type"] == "stream":
            key = (msg["parent_header"].get("msg_id"), msg["content"].get("name"))
            used = self._stream_chars.get(key, 0)
            text = msg["content"].get("text", "")
            self._stream_chars[key] = used + len(text)
            room = self.max_output_chars - used
            if room <= 0:
                return None
            if len(text) > room:
                msg["content"]["text"] = text[:room] + "\n... output truncated by the autograder ...\n"
        return super().output(outs, msg, display_id, cell_index)


def autograde_preprocessors():
    """nbgrader's autograde pipeline for c.Autograde: Execute replaced by ResilientExecute, with the verdicts
    reached outside the kernel around it (autograder.verdict: cases in before, judged before SaveAutoGrades)."""
    from nbgrader.preprocessors import SaveAutoGrades

    from .verdict import JudgeVerdict, PrepareVerdict

    pipeline = []
    for pp in Autograde.class_traits()["autograde_preprocessors"].default():
        pipeline += {Execute: [PrepareVerdict, ResilientExecute], SaveAutoGrades: [JudgeVerdict, pp]}.get(pp, [pp])
    return pipeline
