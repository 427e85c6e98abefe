"""The file's own audio track: decoding it, and its ITU-R BS.1770 integrated loudness (K-weighted, gated).

The measurement itself lives in `sonic_model.loudness` (normalisation before muxing uses it too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonic_model.loudness import integrated_loudness, true_peak_dbtp

__all__ = ["decode_audio_track", "integrated_loudness", "true_peak_dbtp"]


def decode_audio_track(video_path: str | Path) -> tuple[np.ndarray, int] | None:
    """The file's first audio track as float32 [samples, channels] at its own rate (None if absent).

    Decoded at the native rate and channel layout because clipping and loudness are properties
    of what is delivered, which a downmix or resampling would blur.
    """
    import av

    with av.open(str(video_path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        chunks = [frame.to_ndarray().astype(np.float32) for frame in _audio_frames(container, stream)]
    if not chunks:
        return np.zeros((0, 1), np.float32), int(rate)
    planar = [chunk if chunk.ndim == 2 else chunk[np.newaxis] for chunk in chunks]
    samples = np.concatenate(planar, axis=1).T
    return np.ascontiguousarray(samples), int(rate)


def _audio_frames(container, stream):
    import av

    # AAC decodes to planar float; packed formats come out [1, samples * channels].
    resampler = av.AudioResampler(format="fltp")
    for frame in container.decode(stream):
        yield from resampler.resample(frame)
    yield from resampler.resample(None)
