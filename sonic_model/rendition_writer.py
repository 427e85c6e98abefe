"""One streaming pass, several videos: the master and its renditions from the same generated frames.

`RenditionWriters` holds one `VideoWriter` (one ffmpeg process) per output. Each generated
frame is written to the master as it is and, composited into each rendition's canvas
(`RenditionCompositor`), to that rendition's encoder; the frame is then dropped. So the
generation runs once whatever the number of renditions, and memory holds one frame per output
(plus ffmpeg's own look-ahead), however long the video. The encoders run in their own
processes, in parallel with the compositing.

Every output is H.264 High, yuv420p, 25 fps, +faststart; renditions get their stated bitrate
(`RenditionSpec.video_bitrate`, capped at `max_bitrate`) and AAC 48 kHz stereo.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from sonic_model.encode import VideoWriter
from sonic_model.renditions import MASTER, RenditionCompositor

# x264 speed for renditions: "faster" keeps High profile features (CABAC, 8x8 transforms,
# B-frames) at about 2x the speed of "medium"; the bitrate, not the preset, sets the quality.
RENDITION_X264_PRESET = "faster"


def rendition_path(master_path: str | Path, name: str) -> Path:
    """Where a rendition goes beside its master: `talk.mp4` -> `talk.vertical.mp4` (master: itself)."""
    master_path = Path(master_path)
    if name == MASTER:
        return master_path
    return master_path.with_name(f"{master_path.stem}.{name}{master_path.suffix or '.mp4'}")


@dataclass
class RenditionOutput:
    """One rendition being written."""

    name: str
    path: Path
    compositor: RenditionCompositor
    writer: VideoWriter


class RenditionWriters:
    """The master's `VideoWriter` plus one per rendition, fed frame by frame (module docstring).

    Use as a context manager around the frame loop, like `VideoWriter`: on a clean exit every
    file is finished and moved to its final name; on an error none is left.
    """

    def __init__(
        self,
        master: VideoWriter,
        compositors: dict[str, RenditionCompositor],
        paths: dict[str, Path],
        *,
        audio_path: str | Path | None,
        generator: str,
        extra_metadata: dict[str, str] | None = None,
    ) -> None:
        self.master = master
        self.outputs: list[RenditionOutput] = []
        for name, compositor in compositors.items():
            spec = compositor.spec
            writer = VideoWriter(
                paths[name],
                width=spec.width,
                height=spec.height,
                num_frames=master.num_frames,
                audio_path=audio_path,
                generator=generator,
                preset=RENDITION_X264_PRESET,
                extra_metadata={"rendition": name, **(extra_metadata or {})},
                video_bitrate=spec.video_bitrate,
                max_bitrate=spec.max_bitrate,
                audio_bitrate=spec.audio_bitrate,
                audio_sample_rate=48000,
                audio_channels=2,
            )
            self.outputs.append(RenditionOutput(name, Path(paths[name]), compositor, writer))

    @property
    def writers(self) -> list[VideoWriter]:
        return [self.master] + [output.writer for output in self.outputs]

    def __enter__(self) -> "RenditionWriters":
        try:
            for writer in self.writers:
                writer.open()
        except BaseException:
            self.abort()
            raise
        return self

    def __exit__(self, exc_type: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: np.ndarray) -> None:
        self.master.write(frame)
        for output in self.outputs:
            output.writer.write(output.compositor.frame(frame))

    def close(self) -> None:
        """Finish every file; if one fails, none is left and the error is raised."""
        try:
            for writer in self.writers:
                writer.close()
        except BaseException:
            self.abort()
            for writer in self.writers:
                writer.out_path.unlink(missing_ok=True)
            raise

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()
