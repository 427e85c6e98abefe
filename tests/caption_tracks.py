"""The caption track muxed into a video, read back as ffmpeg extracts it (shared by the captions tests)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from sonic_model.encode import ffmpeg_executable


def caption_track_text(video: Path) -> str:
    """The SRT text of `video`'s first subtitle stream (fails when it has none)."""
    finished = subprocess.run(
        [ffmpeg_executable(), "-v", "error", "-i", str(video), "-map", "0:s:0", "-f", "srt", "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return finished.stdout
