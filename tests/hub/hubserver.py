"""A JupyterHub for one test run: real Linux users, one nbgrader exchange, the hub's REST API.

Everything lives in one temporary folder (mode 0755, so the hub's users can read the course code in it) and
listens on 127.0.0.1 only. The hub and its users run the environment that tests/hub/install_hub_env.sh builds
from Debian's Python in /opt/linattn-hub (the tests' own Python may be unreadable to other users); the course's
code (linattn_ref, autograder) is a copy of this checkout, put on PYTHONPATH. `stop()` ends the hub, its proxy
and every process of the test's users by PID, and removes the users and their homes.
"""
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HUB_ENV = Path("/opt/linattn-hub")
COURSE_ID = "linattn"
PASSWORD = secrets.token_hex(8)  # the dummy authenticator's one password, for this run only
COURSE_FILES = ["linattn_ref", "autograder", "solutions", "course", "nbgrader_config.py"]


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing():
    """Why this machine cannot run the hub test (None: it can)."""
    if os.geteuid() != 0:
        return "the JupyterHub test creates Linux users and must run as root"
    for path in (HUB_ENV / "bin" / "jupyterhub", HUB_ENV / "bin" / "nbgrader"):
        if not path.exists():
            return f"{path} not found: run 'make setup' as root (tests/hub/install_hub_env.sh)"
    if not shutil.which("configurable-http-proxy"):
        return "configurable-http-proxy not found: run 'make setup' as root (tests/hub/install_hub_env.sh)"
    if not shutil.which("useradd"):
        return "useradd not found"
    return None


def ignore_generated(folder, names):
    return [n for n in names if n in ("__pycache__", ".ipynb_checkpoints", "gradebook.db")]


class Hub:
    """`Hub(base, instructor, students)`: users created, exchange made, hub started. Use `stop()` in a finally."""

    def __init__(self, base, instructor, students, start_timeout=120):
        self.base = Path(base)
        self.base.chmod(0o755)
        self.instructor, self.students = instructor, list(students)
        self.users = [instructor, *self.students]
        self.created, self.pids, self.proc = [], set(), None
        try:
            self._setup(start_timeout)
        except BaseException:
            self.stop()
            raise

    # -- set-up ----------------------------------------------------------------------------------------------

    def _setup(self, start_timeout):
        # The course code every user's server and kernels import, read-only for them.
        self.code = self.base / "course-code"
        for name in ("linattn_ref", "autograder"):
            shutil.copytree(ROOT / name, self.code / name, ignore=ignore_generated)
        # One exchange for every user, as nbgrader's docs set it up: world-writable with the sticky bit.
        self.exchange = self.base / "exchange"
        self.exchange.mkdir()
        self.exchange.chmod(0o1777)
        # What /etc/jupyter/nbgrader_config.py holds on a real hub; here found through JUPYTER_CONFIG_PATH.
        self.config_dir = self.base / "jupyter-config"
        self.config_dir.mkdir()
        (self.config_dir / "nbgrader_config.py").write_text(
            f"c = get_config()  # noqa: F821\nc.CourseDirectory.course_id = {COURSE_ID!r}\n"
            f"c.Exchange.root = {str(self.exchange)!r}\n"
            "from autograder.execute import fix_lost_wakeups\nfix_lost_wakeups()\n")
        # JupyterLab settings for every user: all cells stay in the page, no news pop-up, no update check.
        (self.config_dir / "lab-settings").mkdir()
        (self.config_dir / "lab-settings" / "overrides.json").write_text(json.dumps({
            "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
            "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}))
        (self.config_dir / "jupyter_server_config.json").write_text(json.dumps(
            {"LabServerApp": {"app_settings_dir": str(self.config_dir / "lab-settings")}}))
        for user in self.users:
            if user_exists(user):
                raise RuntimeError(f"Linux user {user} exists already: the test will not touch it")
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user], check=True,
                           capture_output=True)
            self.created.append(user)
        self.clone = self.home(self.instructor) / "linattn"  # the instructor's clone of the repository
        for name in COURSE_FILES:
            copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
            copy(ROOT / name, self.clone / name, **({"ignore": ignore_generated} if copy is shutil.copytree else {}))
        subprocess.run(["chown", "-R", f"{self.instructor}:{self.instructor}", str(self.clone)], check=True)
        self._start(start_timeout)

    def env(self, user, pythonpath=None):
        """The environment a user's server, and a command the test runs as that user, sees."""
        home = str(self.home(user))
        return {"HOME": home, "USER": user, "LOGNAME": user, "LANG": "C.UTF-8", "SHELL": "/bin/bash",
                "PATH": f"{HUB_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin",  # nbgrader runs alembic from PATH
                "PYTHONPATH": str(pythonpath or self.code), "JUPYTER_CONFIG_PATH": str(self.config_dir),
                "LINATTN_FAST": "1"}

    def _start(self, timeout):
        self.port, hub_port, api_port = free_port(), free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = secrets.token_hex(24)
        state = self.base / "hub-state"
        state.mkdir()
        env_keys = ("PYTHONPATH", "JUPYTER_CONFIG_PATH", "LINATTN_FAST", "LANG")
        config = f"""
c = get_config()  # noqa: F821
c.JupyterHub.bind_url = "{self.url}"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{api_port}"
c.ConfigurableHTTPProxy.pid_file = "{state}/proxy.pid"
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{PASSWORD}"
c.Authenticator.allowed_users = {set(self.users)!r}
c.Spawner.cmd = ["{HUB_ENV}/bin/jupyterhub-singleuser"]
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = c.Spawner.http_timeout = 120
c.Spawner.environment = {json.dumps({k: v for k, v in self.env(self.instructor).items() if k in env_keys})}
c.LocalProcessSpawner.shell_cmd = []
c.JupyterHub.services = [{{"name": "hub-test", "api_token": "{self.token}"}}]
c.JupyterHub.load_roles = [{{"name": "hub-test", "services": ["hub-test"],
    "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers", "tokens"]}}]
"""
        (state / "jupyterhub_config.py").write_text(config)
        self.log_path = state / "jupyterhub.log"
        env = {"PATH": f"{HUB_ENV / 'bin'}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
               "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(24)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([str(HUB_ENV / "bin" / "jupyterhub"), "-f", "jupyterhub_config.py"],
                                         cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with status {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("/hub/api/")
                return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"JupyterHub did not answer on {self.url} within {timeout} s:\n{self.log_tail()}")

    # -- use -------------------------------------------------------------------------------------------------

    def home(self, user):
        return Path(pwd.getpwnam(user).pw_dir)

    def log_tail(self, lines=60):
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def api(self, path, method="GET", body=None, timeout=30):
        """A request to the hub (or through its proxy to a user's server) with the test's service token."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, method=method, data=data,
                                     headers={"Authorization": f"token {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            text = response.read().decode()
        return json.loads(text) if text else None

    def note_server(self, user):
        """Remember the PID of `user`'s server, to stop it by PID at the end."""
        server = self.api(f"/hub/api/users/{user}").get("servers", {}).get("")
        if server and server.get("state", {}).get("pid"):
            self.pids.add(server["state"]["pid"])

    def start_server(self, user, timeout=120):
        """Start `user`'s single-user server through the REST API and wait until it is ready."""
        self.api(f"/hub/api/users/{user}/server", method="POST")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api(f"/hub/api/users/{user}").get("servers", {}).get("")
            if server and server.get("state", {}).get("pid"):
                self.pids.add(server["state"]["pid"])
            if server and server.get("ready"):
                return server
            time.sleep(0.5)
        raise TimeoutError(f"{user}'s server was not ready within {timeout} s:\n{self.log_tail()}")

    def run_as(self, user, *cmd, cwd=None, pythonpath=None, check=True, timeout=600):
        """Run `cmd` as Linux user `user`, in the environment their server has; returns the CompletedProcess."""
        proc = subprocess.run(["setpriv", "--reuid", user, "--regid", user, "--init-groups", "--", *cmd],
                              cwd=cwd or self.home(user), env=self.env(user, pythonpath), capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"as {user}: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n"
                                 f"{proc.stderr[-3000:]}")
        return proc

    # -- tear-down -------------------------------------------------------------------------------------------

    def stop(self):
        """Stop the hub (it stops the proxy and the users' servers), then anything left of them, by PID; remove the
        users. Safe to call more than once, and after a set-up that failed half-way."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        proxy_pid = self.base / "hub-state" / "proxy.pid"
        if proxy_pid.exists():
            self.pids.add(int(proxy_pid.read_text().strip() or 0))
        uids = {pwd.getpwnam(u).pw_uid for u in self.created if user_exists(u)}
        for pid in sorted(self.pids | processes_of(uids)):
            kill(pid)
        for user in self.created:
            subprocess.run(["userdel", "--remove", user], capture_output=True)
        self.created = []


def user_exists(user):
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def processes_of(uids):
    """PIDs of the processes run by `uids` (the test's own users: everything they run, the test started)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid in uids:
                    found.add(int(entry.name))
            except OSError:
                pass  # it ended meanwhile
    return found


def kill(pid):
    if pid <= 1:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        for _ in range(20):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
