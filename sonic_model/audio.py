"""Script audio: any common audio file -> 16 kHz mono float32, plus speech activity.

PyAV (FFmpeg in-process) decodes every container we accept (wav, mp3, m4a/aac, flac, ogg) and
downmixes; soxr resamples to the 16 kHz that Whisper, the VAD and both generators expect. The
original file is still what gets muxed into the published video, so its quality is not lost.
"""

from __future__ import annotations

import functools
import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic_model.errors import AudioError, AudioTooShortError

SAMPLE_RATE = 16_000
# Shorter than one video frame there is nothing to animate.
MIN_SECONDS = 0.2
DEFAULT_MAX_SECONDS = 600.0


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio: `samples` is float32 mono at `sample_rate` (16 kHz), in [-1, 1]."""

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    source_sample_rate: int = SAMPLE_RATE
    source_channels: int = 1

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def load_audio(
    source: str | Path | bytes,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
) -> AudioClip:
    """Decode `source` (a path or the file's bytes) to a 16 kHz mono `AudioClip`.

    Raises `AudioError` for missing, empty, undecodable, too short or too long audio; audio
    over `max_seconds` is refused, never silently cut.
    """
    import av  # deferred: importing PyAV costs ~0.1 s and not every caller decodes audio

    name = "audio bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError("audio is an empty file (0 bytes)")
        opened = io.BytesIO(bytes(source))
    else:
        path = Path(source)
        if not path.exists():
            raise AudioError(f"audio not found: {name}")
        if path.stat().st_size == 0:
            raise AudioError(f"audio is an empty file (0 bytes): {name}")
        opened = str(path)

    try:
        with av.open(opened, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise AudioError(f"file has no audio stream: {name}")
            stream = container.streams.audio[0]
            source_rate = stream.codec_context.sample_rate or stream.rate
            channels = stream.codec_context.channels or 1
            # Resample inside FFmpeg only to planar float mono at the source rate; the rate
            # change itself is soxr's (higher quality than swresample's default).
            resampler = av.AudioResampler(format="fltp", layout="mono", rate=source_rate)
            chunks = []
            total = 0
            limit = None if max_seconds is None else int((max_seconds + 1) * source_rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray()[0]
                    chunks.append(chunk)
                    total += len(chunk)
                if limit is not None and total > limit:
                    raise AudioError(
                        f"audio is longer than the limit of {max_seconds:g} s; split the script "
                        f"or raise the limit: {name}"
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray()[0])
    except AudioError:
        raise
    except av.error.InvalidDataError:
        raise AudioError(f"audio cannot be decoded (not an audio file, or corrupt): {name}") from None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"audio cannot be decoded: {name} ({exc})") from None

    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise AudioError(f"audio holds no samples: {name}")
    if not np.isfinite(samples).all():
        raise AudioError(f"audio holds NaN or infinite samples: {name}")
    samples = resample(samples, source_rate, SAMPLE_RATE)
    clip = AudioClip(np.clip(samples, -1.0, 1.0), SAMPLE_RATE, int(source_rate), int(channels))
    if clip.duration_s < min_seconds:
        raise AudioTooShortError(
            f"audio is {clip.duration_s * 1000:.0f} ms long, shorter than the minimum {min_seconds:g} s: {name}"
        )
    if max_seconds is not None and clip.duration_s > max_seconds:
        raise AudioError(
            f"audio is {clip.duration_s:.1f} s, longer than the limit of {max_seconds:g} s; split "
            f"the script or raise the limit: {name}"
        )
    return clip


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling with soxr (identity when the rates match)."""
    if from_rate == to_rate:
        return samples.astype(np.float32, copy=False)
    import soxr

    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32)


def frame_envelope(clip: AudioClip, fps: float = 25.0) -> np.ndarray:
    """RMS loudness of each video frame's slice of audio, shape [round(duration * fps)]."""
    hop = clip.sample_rate / fps
    count = max(1, round(clip.duration_s * fps))
    edges = np.round(np.arange(count + 1) * hop).astype(np.int64)
    edges[-1] = max(edges[-1], len(clip.samples))
    squared = np.concatenate([[0.0], np.cumsum(clip.samples.astype(np.float64) ** 2)])
    edges = np.clip(edges, 0, len(clip.samples))
    lengths = np.maximum(edges[1:] - edges[:-1], 1)
    return np.sqrt((squared[edges[1:]] - squared[edges[:-1]]) / lengths).astype(np.float32)


_VAD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=1)
def _vad_model():
    from silero_vad import load_silero_vad

    return load_silero_vad()


def speech_segments(
    clip: AudioClip, *, min_silence_s: float = 0.1, min_speech_s: float = 0.1
) -> list[tuple[float, float]]:
    """Speech intervals [(start_s, end_s), ...] found by silero-vad (model shipped in its wheel)."""
    import torch
    from silero_vad import get_speech_timestamps

    with _VAD_LOCK:  # the JIT model keeps recurrent state: one caller at a time
        timestamps = get_speech_timestamps(
            torch.from_numpy(clip.samples),
            _vad_model(),
            sampling_rate=clip.sample_rate,
            min_silence_duration_ms=int(min_silence_s * 1000),
            min_speech_duration_ms=int(min_speech_s * 1000),
            return_seconds=False,
        )
    return [(t["start"] / clip.sample_rate, t["end"] / clip.sample_rate) for t in timestamps]
