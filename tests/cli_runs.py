"""`sonic-catalog` as a user runs it from a shell: a real subprocess of this interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "sonic_catalog.cli"]


def run_cli(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """The command line `sonic-catalog ARGS...`, its output captured as text."""
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, **popen)


def render_one(
    portrait: str | Path, audio: str | Path, out: str | Path, *options: str, **run
) -> subprocess.CompletedProcess:
    """`sonic-catalog render-one --portrait P --audio A --out O OPTIONS...`."""
    return run_cli("render-one", "--portrait", str(portrait), "--audio", str(audio), "--out", str(out), *options, **run)
