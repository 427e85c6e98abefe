"""One streaming pass, several videos: the master and its renditions from the same generated frames.

`RenditionWriters` holds one `VideoWriter` (one ffmpeg process) per output. Each generated
frame is written to the master as it is and, composited into each rendition's canvas
(`RenditionCompositor`), to that rendition's encoder; the frame is then dropped. So the
generation runs once whatever the number of renditions, and memory holds a few frames per
output (`QUEUE_FRAMES`, plus ffmpeg's own look-ahead), however long the video. Each rendition
composites and feeds its encoder on a thread of its own (OpenCV and pipe writes release the
GIL), so the generator goes on with the next frame while they work, and the encoders run in
their own processes.

Every output is H.264 High, yuv420p, 25 fps, +faststart; renditions are coded at a constant
quantiser (`RenditionSpec.qp`) and checked against their bitrate cap (`max_bitrate`: a stream
with any second over it is encoded again under a VBV cap), with AAC 48 kHz stereo. The renditions'
sound is encoded once (`EncodedAudioTrack`, in the background while the frames are made) and
copied into each of them: their encoders encode only the picture.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import numpy as np

from sonic_model.composite import frame_to_i420
from sonic_model.encode import EncodedAudioTrack, VideoWriter
from sonic_model.renditions import MASTER, RenditionCompositor

# x264 for renditions: "ultrafast" with 8x8 transforms put back (the tool that makes the stream
# H.264 High: x264 signals the lowest profile its tools need) and the deblocking filter (without
# it the still surroundings flicker more); CABAC stays off (1.5 ms a frame, changed neither); and
# a constant quantiser (`RenditionSpec.qp`) with the cap checked afterwards, not a rate control:
# with CRF or an average bitrate x264 makes a half-size analysis picture of every frame and moves
# the quantiser with it, re-coding the still canvas (it shimmered); at an average 6 Mb/s it spent
# the bits coding noise. Measured on the 250 vertical frames of a 10 s preview render (landscape
# test photo), one encoder alone (`benchmarks/rendition_x264.py`: CPU, bitrate, PSNR-Y against the
# frames fed, the still area's range over the clip; load 6 while measuring):
#   these settings (QP 18, threads=1)                     6.9 ms/frame  1.9 Mb/s  49.3 dB  range 0.00
#   QP 20 / QP 22                                          6.7 / 6.6 ms  1.4 / 1.1 Mb/s  48.5 / 47.4 dB  range 0.01
#   CRF 20 under the 8 Mb/s VBV cap (the previous choice) 10.5 ms/frame  3.5 Mb/s  50.5 dB  range 0.47
#   CRF 23 under the cap                                  10.0 ms/frame  2.4 Mb/s  48.8 dB  range 0.41
#   average 6 Mb/s (the first choice)                     11.3 ms/frame  5.8 Mb/s  51.2 dB  range 1.40
#   CBR 6 Mb/s with filler, QP >= 18                       10.2 ms/frame  7.8 Mb/s  47.4 dB (most of it filler)
# Earlier, at CRF 20 on a quiet machine: threads auto / 1 / 2 / sliced 9.7 / 9.7 / 10.6 / 11.8 ms;
# no deblock / no 8x8dct (Constrained Baseline) 10.1 / 10.1 ms; bframes=2 12.2 ms; rc-lookahead=10
# + mbtree 10.6 ms (47.9 dB); aq-mode=1 11.1 ms. (ultrafast has no lookahead, mb-tree or scenecut.)
# One thread per encoder: the renditions' encoders already run side by side, one process each.
RENDITION_X264_PRESET = "ultrafast"
RENDITION_X264_PARAMS = "8x8dct=1:deblock=1,0,0:threads=1"


def rendition_path(master_path: str | Path, name: str) -> Path:
    """Where a rendition goes beside its master: `talk.mp4` -> `talk.vertical.mp4` (master: itself)."""
    master_path = Path(master_path)
    if name == MASTER:
        return master_path
    return master_path.with_name(f"{master_path.stem}.{name}{master_path.suffix or '.mp4'}")


# Frames waiting per rendition: enough to ride out an encoder's hiccup, and memory stays one
# generated frame (~0.8 MB at 512 px) per slot whatever the video's length.
QUEUE_FRAMES = 4
_DONE = object()


@dataclass
class RenditionOutput:
    """One rendition being written, by its own thread (composite, convert, pipe to its encoder)."""

    name: str
    path: Path
    compositor: RenditionCompositor
    writer: VideoWriter
    frames: queue.Queue = field(default_factory=lambda: queue.Queue(maxsize=QUEUE_FRAMES))
    thread: threading.Thread | None = None
    error: BaseException | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name=f"rendition-{self.name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            frame = self.frames.get()
            if frame is _DONE:
                return
            if self.error is not None:
                continue  # drain: the producer learns of the error at its next put
            try:
                self.writer.write(self.compositor.frame_i420(*frame))
            except BaseException as exc:  # noqa: BLE001 - handed to the producer thread
                self.error = exc

    def put(self, frame) -> None:
        if self.error is not None:
            raise self.error
        self.frames.put(frame)

    def finish(self) -> None:
        """Wait until every queued frame is written; re-raise this rendition's error, if any."""
        if self.thread is not None:
            self.frames.put(_DONE)
            self.thread.join()
            self.thread = None
        if self.error is not None:
            raise self.error


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
        # One AAC encode per audio bitrate (every rendition asks 192k today), copied into each.
        self.audio_tracks: dict[str, EncodedAudioTrack] = {}
        for name, compositor in compositors.items():
            spec = compositor.spec
            track = None
            if audio_path is not None:
                track = self.audio_tracks.get(spec.audio_bitrate)
                if track is None:
                    track = EncodedAudioTrack(
                        audio_path, paths[name], bitrate=spec.audio_bitrate, sample_rate=48000, channels=2
                    )
                    self.audio_tracks[spec.audio_bitrate] = track
            writer = VideoWriter(
                paths[name],
                width=spec.width,
                height=spec.height,
                num_frames=master.num_frames,
                audio_path=None,
                audio_track=track,
                generator=generator,
                preset=RENDITION_X264_PRESET,
                x264_params=RENDITION_X264_PARAMS,
                extra_metadata={"rendition": name, **(extra_metadata or {})},
                qp=spec.qp,
                crf=spec.crf,
                max_bitrate=spec.max_bitrate,
                # Fed I420: only the changing box is converted per frame, and ffmpeg scales nothing.
                input_pix_fmt="yuv420p",
            )
            self.outputs.append(RenditionOutput(name, Path(paths[name]), compositor, writer))

    @property
    def writers(self) -> list[VideoWriter]:
        return [self.master] + [output.writer for output in self.outputs]

    def __enter__(self) -> RenditionWriters:
        try:
            for track in self.audio_tracks.values():
                track.start()
            for writer in self.writers:
                writer.open()
            for output in self.outputs:
                output.start()
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
        """Hand one generated frame to every output (the renditions composite it on their threads)."""
        if self.outputs:
            frame = np.array(frame, copy=True)  # the generator may reuse its buffer
            # Converted to I420 once here, for every rendition (each warps and blends its planes).
            shared = (frame, frame_to_i420(frame))
            for output in self.outputs:
                output.put(shared)
        self.master.write(frame)

    def close(self) -> None:
        """Finish every file; if one fails, none is left and the error is raised."""
        try:
            for output in self.outputs:
                output.finish()
            for writer in self.writers:
                writer.close()
        except BaseException:
            self.abort()
            for writer in self.writers:
                writer.out_path.unlink(missing_ok=True)
            raise
        finally:
            for track in self.audio_tracks.values():
                track.cleanup()

    def abort(self) -> None:
        for output in self.outputs:
            # Stop the thread: kill its encoder first (a blocked pipe write then fails), then drain.
            output.writer.abort()
            if output.thread is not None:
                while output.thread.is_alive():
                    try:
                        output.frames.put(_DONE, timeout=0.1)
                    except queue.Full:
                        try:
                            output.frames.get_nowait()
                        except queue.Empty:
                            pass
                        continue
                    output.thread.join(timeout=1.0)
                output.thread = None
        for writer in self.writers:
            writer.abort()
        for track in self.audio_tracks.values():
            track.cleanup()
