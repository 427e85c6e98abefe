"""Peak resident memory of a process's children (the ffmpeg encoders), for the render benchmarks.

`RUSAGE_CHILDREN` would count the pages a child shares with this (large) Python process between
fork and exec, so it overstates ffmpeg; each child's VmHWM after exec is its own. Sampled every
50 ms from /proc, so a child that lives less than that may be missed (encoders live for the clip).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class ChildPeakMemory:
    """Each child process's peak resident memory (MB) while this sampler runs, with a short name."""

    def __init__(self) -> None:
        self.peaks: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(0.05):
            for task in Path(f"/proc/{me}/task").iterdir():
                try:
                    children = (task / "children").read_text().split()
                except OSError:
                    continue
                for child in map(int, children):
                    try:
                        status = Path(f"/proc/{child}/status").read_text()
                    except OSError:
                        continue
                    if status.startswith("Name:\tpython"):
                        # Forked but not yet exec'd: a copy of this process (its peak is ours), not an encoder.
                        continue
                    for line in status.splitlines():
                        if line.startswith("VmHWM:"):
                            self.peaks[child] = max(self.peaks.get(child, 0.0), int(line.split()[1]) / 1024)
                    if child not in self.names:
                        try:
                            self.names[child] = _describe(Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0"))
                        except OSError:
                            pass

    def stop(self) -> ChildPeakMemory:
        self._stop.set()
        self._thread.join()
        return self

    def largest_mb(self) -> float:
        """The largest single child's peak."""
        return max(self.peaks.values(), default=0.0)

    def summed_mb(self) -> float:
        """The sum over children of each one's peak: an upper bound of their peak together."""
        return sum(self.peaks.values())

    def by_process(self) -> list[str]:
        return [f"{self.names.get(pid, '?')} {peak:.0f}" for pid, peak in sorted(self.peaks.items())]


def _describe(args: list[bytes]) -> str:
    """A short name for a child process: its output file (an encoder), or its program."""
    text = [a.decode("utf-8", "replace") for a in args if a]
    for item in reversed(text):
        if item.endswith((".mp4", ".wav")) or item == "-":
            return Path(item).name
    return Path(text[0]).name if text else "?"
