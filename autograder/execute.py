"""nbgrader's Execute preprocessor, made to survive whatever a submission does to its kernel.

nbgrader 0.9.6 on its own:
- a cell that loops past `c.Execute.timeout` is interrupted, scores 0, and the notebook goes on (fine);
- a cell that kills the kernel (os._exit, a segfault, the OOM killer) raises DeadKernelError, and a cell that
  ignores the interrupt raises CellTimeoutError: either one fails the whole submission, which keeps no score;
- a cell that prints megabytes on one line keeps them all (nbgrader limits lines, not characters), in the
  autograded notebook and the feedback.

ResilientExecute gives the cell that lost the kernel an error output (so it scores 0), starts a new kernel,
replays the cells above it that ran cleanly (their outputs discarded) to rebuild the state, and goes on with
the next cell. Replays make a notebook's cost grow with its restarts, so the notebook has a wall-clock budget
(wall_budget): past it, no cell runs (the points earned so far stay) and a running cell is stopped.

Kernels are started by autograder.sandbox.SandboxKernelManager: in a bubblewrap sandbox (unless sandbox is
False), with limits on the memory and processes of the notebook as a whole, and with the kernel's own fd 2 kept
out of the notebook. Every kind of output is capped per cell (streams, displays, results, errors), with a marker
saying what was cut.
"""
import copy
import json
import time
from queue import Empty

from nbclient.client import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat import NotebookNode
from nbgrader.converters import Autograde
from nbgrader.preprocessors import Execute
from traitlets import Bool, Integer, Unicode

from .sandbox import REPO, SandboxKernelManager

KERNEL_LOST = (DeadKernelError, CellTimeoutError)
INCIDENTS = ("CellTimeoutError", "DeadKernelError", "NotRun", "WallBudget")  # enames of the errors written here
CUT = "... output truncated by the autograder ..."
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


def error_output(ename, evalue):
    return NotebookNode(output_type="error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class ResilientExecute(Execute):
    """nbgrader's Execute that loses one cell, not the notebook, when the kernel dies or hangs (see above)."""

    sandbox = Bool(True, help="Run kernels in the bubblewrap sandbox (autograder.sandbox).").tag(config=True)
    exchange_dir = Unicode("", help="Host folder bound read-write into the sandbox at its own path and exported"
                           " to the kernel as AUTOGRADER_EXCHANGE ('' = none).").tag(config=True)
    linattn_ref_dir = Unicode(str(REPO / "linattn_ref"), help="The linattn_ref tree the sandbox shows.").tag(
        config=True)
    answer_keys_visible = Bool(False, help="Show autograder/checks/answer_keys/ in the sandbox.").tag(config=True)
    memory_limit_mb = Integer(4096, help="Memory of the notebook's processes together, and address space of each,"
                              " in MiB (0: none).").tag(config=True)
    max_processes = Integer(256, help="Processes (threads included) of one notebook together.").tag(config=True)
    max_file_mb = Integer(512, help="Size limit of each file a notebook writes, MiB.").tag(config=True)
    wall_budget = Integer(0, help="Seconds one notebook may take, restarts and replays included (0: 10 x the"
                          " cell timeout).").tag(config=True)
    max_output_chars = Integer(20_000, help="Characters of each output stream, and of each error, kept per cell.").tag(
        config=True)
    max_rich_output_chars = Integer(2_000_000, help="Characters of displays and results kept per cell.").tag(
        config=True)
    max_kernel_losses = Integer(5, help="Cells that may lose the kernel before the rest is not run.").tag(
        config=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("kernel_manager_class", SandboxKernelManager)  # before nbgrader's AsyncKernelManager
        super().__init__(**kwargs)

    def preprocess(self, nb, resources=None, km=None):
        fix_lost_wakeups()
        NotebookClient.__init__(self, nb, km)
        self.reset_execution_trackers()
        self._check_assign_resources(resources)
        self._output_chars = {}
        self._deadline = time.monotonic() + (self.wall_budget or 10 * (self.timeout or 30))
        lost = set()  # indices of the cells that killed or hung the kernel: never run again
        start = 0
        while start < len(nb.cells):
            start = self._run_from(start, lost, resources)
        self.set_widgets_metadata()
        return self.nb, self.resources

    def create_kernel_manager(self):
        km = super().create_kernel_manager()
        if isinstance(km, SandboxKernelManager):
            km.sandboxed, km.exchange_dir, km.linattn_ref_dir = self.sandbox, self.exchange_dir, self.linattn_ref_dir
            km.answer_keys_visible, km.memory_limit_mb = self.answer_keys_visible, self.memory_limit_mb
            km.max_processes, km.max_file_mb = self.max_processes, self.max_file_mb
        return km

    def _get_timeout(self, cell):
        """A cell's timeout, never past the notebook's wall-clock budget."""
        timeout = super()._get_timeout(cell)
        left = max(1, int(self._deadline - time.monotonic()))
        return min(timeout, left) if timeout else left

    def _out_of_time(self):
        return time.monotonic() >= self._deadline

    def _not_run(self, start, ename, why):
        for cell in self.nb.cells[start:]:
            if cell.cell_type == "code":
                cell.outputs = [error_output(ename, why)]
        return len(self.nb.cells)

    def _run_from(self, start, lost, resources):
        """Start a kernel, replay the clean cells before `start`, run the rest; return where to go on from."""
        if len(lost) >= self.max_kernel_losses:  # give up on the rest without starting another kernel
            return self._not_run(start, "NotRun", f"not run: the kernel was lost {len(lost)} times above")
        budget = f"not run: the notebook used up its {self.wall_budget or 10 * (self.timeout or 30)} s budget"
        if self._out_of_time():
            return self._not_run(start, "WallBudget", budget)
        self.shutdown_kernel = "graceful"
        with self.setup_kernel():
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
                if self._out_of_time():
                    self.shutdown_kernel = "immediate"
                    return self._not_run(start, "WallBudget", budget)
            for index in range(start, len(self.nb.cells)):
                cell = self.nb.cells[index]
                if self._out_of_time():
                    self.shutdown_kernel = "immediate"
                    return self._not_run(index, "WallBudget", budget)
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

    def _room(self, msg, kind, size, limit):
        """Characters of this output that fit in what its execution may still keep of outputs of this kind."""
        key = (msg["parent_header"].get("msg_id"), kind)
        used = self._output_chars.get(key, 0)
        self._output_chars[key] = used + size
        return limit - used

    def _cap_rich(self, msg, kind):
        """A display or result too big for what is left of its cell's allowance becomes a marker saying so."""
        content = msg["content"]
        size = len(json.dumps(content.get("data", {}))) + len(json.dumps(content.get("metadata", {})))
        if size > self._room(msg, "rich", size, self.max_rich_output_chars):
            content["data"] = {"text/plain": f"[{kind} of {size / 1e6:.1f} MB: {CUT}]"}
            content["metadata"] = {}

    def output(self, outs, msg, display_id, cell_index):
        """Cap every kind of output of one execution (stderr and errors always leave a trace)."""
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            text = content.get("text", "")
            room = self._room(msg, content.get("name"), len(text), self.max_output_chars)
            if room <= 0:
                return None
            if len(text) > room:
                content["text"] = text[:room] + f"\n{CUT}\n"
        elif kind in ("display_data", "execute_result"):
            self._cap_rich(msg, kind.replace("_", " "))
        elif kind == "error":  # kept whatever its size: an error is what zeroes a cell
            content["evalue"] = str(content.get("evalue", ""))[:self.max_output_chars]
            traceback, kept = [], 0
            for line in content.get("traceback", []):
                if kept + len(line) > self.max_output_chars:
                    traceback.append(CUT)
                    break
                traceback.append(line)
                kept += len(line)
            content["traceback"] = traceback
        return super().output(outs, msg, display_id, cell_index)

    def _update_display_id(self, display_id, msg):
        self._cap_rich(msg, "display update")
        return super()._update_display_id(display_id, msg)


def autograde_preprocessors():
    """nbgrader's autograde pipeline for c.Autograde: Execute replaced by ResilientExecute, with the verdicts
    reached outside the kernel around it (autograder.verdict: cases in before, judged before SaveAutoGrades)."""
    from nbgrader.preprocessors import SaveAutoGrades

    from .verdict import JudgeVerdict, PrepareVerdict

    pipeline = []
    for pp in Autograde.class_traits()["autograde_preprocessors"].default():
        pipeline += {Execute: [PrepareVerdict, ResilientExecute], SaveAutoGrades: [JudgeVerdict, pp]}.get(pp, [pp])
    return pipeline
