"""A JupyterLab server for one test run, and the notebook actions a learner performs in it.

The server runs from the interpreter running the tests (the project's .venv), listens on 127.0.0.1 only,
and gets its own config, settings and workspace folders, so a learner's own JupyterLab set-up neither
changes what the test sees nor is changed by it.
"""
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]

# JupyterLab user settings for the run. Every cell stays in the page (the default windowing drops cells
# scrolled out of view, and the test looks for outputs anywhere in the notebook); no news pop-up covers
# the notebook, and nothing asks the internet about updates.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """`jupyter lab` serving `root_dir`; `stop()` shuts it and its kernels down."""

    def __init__(self, root_dir, state_dir, start_timeout=90):
        self.root_dir = Path(root_dir)
        self.port = free_port()
        self.token = secrets.token_hex(24)
        self.url = f"http://127.0.0.1:{self.port}"
        state_dir = Path(state_dir)
        for name, values in LAB_SETTINGS.items():
            path = state_dir / "settings" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        bin_dir = os.path.dirname(sys.executable)
        env = dict(os.environ,
                   # nbgrader's Validate runs alembic as a subprocess: the venv's bin must be on PATH.
                   PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""),
                   # Kernels import linattn_ref and autograder from this checkout, installed or not.
                   PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
                   JUPYTER_CONFIG_DIR=str(state_dir / "config"),
                   JUPYTER_RUNTIME_DIR=str(state_dir / "runtime"),
                   JUPYTERLAB_SETTINGS_DIR=str(state_dir / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(state_dir / "workspaces"))
        cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
               f"--ServerApp.root_dir={self.root_dir}"]
        if os.geteuid() == 0:
            cmd.append("--allow-root")
        self.log_path = state_dir / "jupyterlab.log"
        with open(self.log_path, "wb") as log:
            # cwd = root_dir: nbgrader's Validate reads nbgrader_config.py from the server's working directory.
            self.proc = subprocess.Popen(cmd, cwd=self.root_dir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        try:
            self._wait_until_up(start_timeout)
        except BaseException:
            self.stop()
            raise

    def _request(self, path, method="GET", timeout=5):
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status

    def _wait_until_up(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if self._request("/api/status") == 200:
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(0.3)
        raise TimeoutError(f"jupyter lab did not answer on {self.url} within {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines=40):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def page_url(self, path):
        # reset: start from an empty workspace, not with the notebooks an earlier page left open.
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"

    def stop(self):
        if self.proc.poll() is not None:
            return
        try:
            self._request("/api/shutdown", method="POST")  # also shuts the kernels down
            self.proc.wait(timeout=20)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Notebook actions, on a Playwright page showing JupyterLab.

CODE_CELLS = ".jp-Notebook .jp-CodeCell"
PROMPT = ".jp-InputArea-prompt"
RAN = re.compile(r"^\[\d+\]:$")  # "[ ]:" not run, "[*]:" queued or running, "[3]:" ran
PROMPTS_JS = f"[...document.querySelectorAll('{CODE_CELLS} {PROMPT}')].map(e => e.textContent.trim())"
STARTED_JS = f"start => {PROMPTS_JS}[start] !== '[ ]:'"
NOTHING_QUEUED_JS = f"() => !{PROMPTS_JS}.some(t => t.includes('*'))"


def open_notebook(page, lab, path, timeout=90_000):
    """Open `path` (relative to the server's root) and wait until its kernel is idle."""
    page.goto(lab.page_url(path))
    page.locator(".jp-NotebookPanel .jp-Notebook").wait_for(timeout=timeout)
    wait_kernel_idle(page, timeout)


def wait_kernel_idle(page, timeout=90_000):
    page.locator("#jp-main-statusbar").get_by_text(re.compile(r"\|\s*Idle")).wait_for(timeout=timeout)


def run_menu(page, item):
    page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item .lm-Menu-itemLabel", has_text=re.compile(f"^{item}$")).click()


def select_cell(cell, attempts=5):
    """Make `cell` the active cell. After a run JupyterLab scrolls to the active cell, and on a busy machine
    that scroll can move the notebook between aiming and clicking: click until the cell is active."""
    for _ in range(attempts):
        cell.locator(PROMPT).click()
        try:
            cell.page.wait_for_function("cell => cell.classList.contains('jp-mod-active')",
                                        arg=cell.element_handle(), timeout=2000)
            return
        except PlaywrightTimeout:
            pass
    raise AssertionError(f"clicking the prompt of a cell did not select it in {attempts} attempts")


def run_all_cells(page, timeout_per_pass=120_000, retries=5):
    """Run every code cell as a learner does: Run > Run All Cells. JupyterLab stops a run at the first cell
    that raises (an exercise not done yet), so after each such stop run on from the next cell.

    Right after an error the kernel briefly aborts whatever arrives; on a busy machine the next run can fall
    in that window and come back not run, so a pass whose first cell did not run is tried again."""
    cells = page.locator(CODE_CELLS)
    prompts = cells.locator(PROMPT)
    run_menu(page, "Run All Cells")
    start, tries = 0, {}
    while True:
        try:  # a pass has begun once its first cell leaves "[ ]:", unless it was aborted at once
            page.wait_for_function(STARTED_JS, arg=start, timeout=5000)
        except PlaywrightTimeout:
            pass
        try:
            page.wait_for_function(NOTHING_QUEUED_JS, timeout=timeout_per_pass)
        except PlaywrightTimeout:
            raise AssertionError(f"code cells still running after {timeout_per_pass / 1000:.0f} s; "
                                 f"prompts: {prompts.all_inner_texts()}") from None
        not_run = [i for i, text in enumerate(prompts.all_inner_texts()) if not RAN.match(text.strip())]
        if not not_run:
            wait_kernel_idle(page)
            return
        start = not_run[0]
        tries[start] = tries.get(start, 0) + 1
        if tries[start] > retries:
            raise AssertionError(f"code cell {start} did not run in {retries} tries; "
                                 f"prompts: {prompts.all_inner_texts()}")
        wait_kernel_idle(page)
        select_cell(cells.nth(start))
        run_menu(page, "Run Selected Cell and All Below")
