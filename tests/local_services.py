"""Start and stop real local services for multi-process tests and benchmarks (127.0.0.1 only).

`LocalServices` starts a `prefect server start`, a `dask scheduler` and `sonic-catalog worker`
processes, each in its own process group, and stops every one it started (whole process
trees, even if the test fails) when the `with` block ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def quiet_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.update(
        {
            "DO_NOT_TRACK": "1",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HF_HUB_OFFLINE": "1",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
            "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def kill_tree(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Kill a process we started and everything under it (its group, then any stragglers)."""
    import psutil

    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for child in children:
        try:
            child.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


class LocalServices:
    """Prefect server + Dask scheduler + N workers on 127.0.0.1, all stopped on exit."""

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 0,
        worker_env: dict | None = None,
        preload: str | None = None,
        nthreads: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.n_workers = workers
        self.worker_env = worker_env or {}
        self.preload = preload
        self.nthreads = nthreads
        self.processes: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []
        self.prefect_home = Path(tempfile.mkdtemp(prefix="prefect-home-", dir=self.workdir))
        self.api_url = ""
        self.scheduler = ""

    # --- starting ---
    def _spawn(self, argv: list[str], log: str, env: dict) -> subprocess.Popen:
        handle = open(self.workdir / log, "ab")
        process = subprocess.Popen(
            argv, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def env(self, **extra: str) -> dict:
        """Environment for a process that talks to this Prefect server (and cluster)."""
        return quiet_env(PREFECT_HOME=str(self.prefect_home), PREFECT_API_URL=self.api_url, **extra)

    def start_prefect(self, timeout: float = 120) -> str:
        port = free_port()
        env = quiet_env(PREFECT_HOME=str(self.prefect_home), PREFECT_UI_ENABLED="false")
        env.pop("PREFECT_API_URL", None)
        server = self._spawn(
            [str(BIN / "prefect"), "server", "start", "--host", HOST, "--port", str(port)], "prefect-server.log", env
        )
        self.api_url = f"http://{HOST}:{port}/api"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"prefect server exited: {self.log('prefect-server.log')[-2000:]}")
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return self.api_url
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"prefect server not healthy after {timeout} s: {self.log('prefect-server.log')[-2000:]}")

    def start_scheduler(self, timeout: float = 60) -> str:
        port = free_port()
        self._spawn(
            [str(BIN / "dask"), "scheduler", "--host", HOST, "--port", str(port), "--dashboard-address", f"{HOST}:0"],
            "dask-scheduler.log",
            quiet_env(),
        )
        self.scheduler = f"tcp://{HOST}:{port}"
        self._wait_port(port, timeout, "dask-scheduler.log")
        return self.scheduler

    def start_worker(self, index: int, gpus: int = 1) -> subprocess.Popen:
        argv = [
            str(BIN / "sonic-catalog"),
            "worker",
            self.scheduler,
            "--gpus",
            str(gpus),
            "--host",
            HOST,
            "--name",
            f"worker-{index}",
        ]
        if self.nthreads:  # else the command's default (a thread per render in flight, one for CPU stages)
            argv += ["--nthreads", str(self.nthreads)]
        if self.preload:
            argv += ["--preload", self.preload]
        worker = self._spawn(argv, f"worker-{index}.log", self.env(**self.worker_env))
        self.workers.append(worker)
        return worker

    def wait_for_workers(self, count: int, timeout: float = 120) -> None:
        from distributed import Client

        with Client(self.scheduler, timeout=timeout) as client:
            client.wait_for_workers(count, timeout=timeout)

    def _wait_port(self, port: int, timeout: float, log: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((HOST, port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"nothing listening on {port} after {timeout} s: {self.log(log)[-2000:]}")

    def log(self, name: str) -> str:
        path = self.workdir / name
        return path.read_text(errors="replace") if path.exists() else ""

    # --- the with block ---
    def __enter__(self) -> LocalServices:
        try:
            self.start_prefect()
            if self.n_workers:
                self.start_scheduler()
                for index in range(self.n_workers):
                    self.start_worker(index)
                self.wait_for_workers(self.n_workers)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                kill_tree(process, signal.SIGTERM)
            kill_tree(process, signal.SIGKILL)
        self.processes.clear()
