"""The one media probe for rendered videos: what is in an MP4, and its frames.

PyAV reads the container in-process (the imageio-ffmpeg wheel ships no ffprobe).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sonic_model.errors import InputError


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file, read from its streams (durations in seconds)."""

    width: int
    height: int
    fps: float
    num_frames: int
    video_duration_s: float
    audio_duration_s: float | None
    video_codec: str
    audio_codec: str | None
    audio_sample_rate: int | None
    pix_fmt: str
    metadata: dict[str, str] = field(default_factory=dict)


def probe_video(path: str | Path) -> VideoInfo:
    """Read stream facts of a video; frames are counted by demuxing (no decode)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"file has no video stream: {path}")
            vstream = container.streams.video[0]
            astream = container.streams.audio[0] if container.streams.audio else None
            fps = float(vstream.average_rate or vstream.guessed_rate or 0)
            frames = sum(1 for packet in container.demux(vstream) if packet.size)
            audio_duration = None
            if astream is not None and astream.duration is not None:
                audio_duration = float(astream.duration * astream.time_base)
            return VideoInfo(
                width=vstream.codec_context.width,
                height=vstream.codec_context.height,
                fps=fps,
                num_frames=frames,
                video_duration_s=frames / fps if fps else 0.0,
                audio_duration_s=audio_duration,
                video_codec=vstream.codec_context.name,
                audio_codec=astream.codec_context.name if astream is not None else None,
                audio_sample_rate=astream.codec_context.sample_rate if astream is not None else None,
                pix_fmt=str(vstream.codec_context.pix_fmt),
                metadata=dict(container.metadata),
            )
    except InputError:
        raise
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"video cannot be read: {path} ({exc})") from None


def iter_video_frames(path: str | Path, *, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for every `step`-th frame, decoding one at a time."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                yield index, frame.to_ndarray(format="rgb24")


def iter_rgb_and_luma_frames(video_path: str | Path) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield (index, RGB uint8, luma uint8 0-255) per frame, decoding one frame at a time.

    For yuv420p (every video we make) the planes are taken raw and converted by OpenCV, about
    6x cheaper than PyAV's swscale RGB conversion (2.5 ms -> 0.4 ms per 512 px frame; the
    results differ by ~1 level). Luma is the Y plane mapped from video range (16-235) to 0-255.
    """
    import av
    import cv2

    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for index, frame in enumerate(container.decode(stream)):
            if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
                planes = frame.to_ndarray()  # [H * 3/2, W]: Y, then U and V quarter planes
                rgb = cv2.cvtColor(planes, cv2.COLOR_YUV2RGB_I420)
                luma = cv2.convertScaleAbs(planes[: frame.height], alpha=255.0 / 219.0, beta=-16 * 255.0 / 219.0)
            else:
                rgb = frame.to_ndarray(format="rgb24")
                luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
            yield index, rgb, luma
