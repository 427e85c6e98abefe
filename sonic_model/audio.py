"""Script audio: any file with an audio stream -> 16 kHz mono float32, plus speech activity.

PyAV (FFmpeg in-process) decodes every container we accept: audio files (wav, mp3, m4a/aac,
flac, ogg/opus) and videos (mp4, mov, webm, mkv), whose picture is ignored. soxr resamples to
the 16 kHz that Whisper, the VAD and both generators expect. The original sound (the same
presented samples at their own rate) is what gets muxed into the published video.

Time is presentation time, as FFmpeg reports it (`decode_audio_stream`): each decoded frame is
placed at its timestamp, after FFmpeg has applied the container's edit list and the codec's
priming (the decoder drops the samples the file marks as encoder delay). A gap between frames
becomes silence; a stream starting late or early (a phone video's audio track starting 0.3 s
after its picture, a negative start time) keeps that start in `AudioStream.start_s`, which only
matters against a picture (`sonic_model.video_reader`); as a script, the sound starts at its own
first presented sample. Its duration is that stream's, never the container's.
"""

from __future__ import annotations

import io
import math
import re
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic_model.errors import AudioError, AudioTooShortError
from sonic_model.internals import silero

SAMPLE_RATE = 16_000
# Shorter than one video frame there is nothing to animate.
MIN_SECONDS = 0.2
DEFAULT_MAX_SECONDS = 600.0
# Timestamps are rounded to the container's clock (1 ms in Matroska): closer than this to where
# the previous frame ended is contiguous, not a gap or an overlap.
TIMESTAMP_SLACK_S = 0.002
# A hole in the timestamps longer than this is a corrupt file, not a pause to fill with silence.
MAX_GAP_S = 60.0
# Decoded samples past the stream's declared end, up to this many codec frames, are the encoder's
# end padding (an AAC frame is 1024 samples; MP4 edit lists end before it) and are not presented.
MAX_END_PADDING_FRAMES = 2


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


@dataclass(frozen=True)
class AudioStream:
    """One audio stream as a player presents it, at its own rate.

    `samples` is float32 [channels, n] (one row when decoded as mono); `samples[:, 0]` plays at
    `start_s` on the file's timeline (0 for most audio files; a video's sound may start later or
    earlier than its picture). `declared_duration_s` is what the stream's own header says
    (MP4 track / edit list, mp3 Xing, WAV data size, FLAC STREAMINFO, Matroska DURATION tag),
    None when it says nothing; it is compared with the decoded length to find files cut short.
    """

    samples: np.ndarray
    sample_rate: int
    start_s: float
    stream_index: int
    stream_count: int
    declared_duration_s: float | None
    codec: str
    source_channels: int

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / self.sample_rate

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s

    def write_wav(self, path: str | Path) -> Path:
        """Write the presented samples as a float WAV (what ffmpeg muxes: no second decode of the source)."""
        import soundfile

        samples = np.ascontiguousarray(self.samples.T)
        soundfile.write(str(path), samples, self.sample_rate, subtype="FLOAT", format="WAV")
        return Path(path)


def _open_source(source: str | Path | bytes) -> tuple[object, str]:
    """What PyAV opens (a path or a file object) and the name errors use."""
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise AudioError("audio is an empty file (0 bytes)")
        return io.BytesIO(bytes(source)), "audio bytes"
    path = Path(source)
    if not path.exists():
        raise AudioError(f"audio not found: {path}")
    if path.stat().st_size == 0:
        raise AudioError(f"audio is an empty file (0 bytes): {path}")
    return str(path), str(path)


def _select_stream(container, stream_index: int | None, name: str):
    streams = container.streams.audio
    if not streams:
        raise AudioError(f"file has no audio stream: {name}")
    index = 0 if stream_index is None else int(stream_index)
    if not 0 <= index < len(streams):
        raise AudioError(
            f"audio stream {index} does not exist: the file has {len(streams)} audio stream(s), numbered from 0: {name}"
        )
    return index, streams[index]


def _declared_duration(stream) -> float | None:
    """The stream's own declared duration in seconds (never the container's), None if it has none."""
    if stream.duration is not None and stream.duration > 0 and stream.time_base:
        return float(stream.duration * stream.time_base)
    # Matroska/WebM keep per-track durations only in a DURATION tag, written by FFmpeg as the
    # track's end time "HH:MM:SS.nnnnnnnnn".
    tag = {key.upper(): value for key, value in stream.metadata.items()}.get("DURATION")
    match = re.fullmatch(r"(\d+):(\d{2}):(\d{2}(?:\.\d+)?)", (tag or "").strip())
    if match:
        end = int(match[1]) * 3600 + int(match[2]) * 60 + float(match[3])
        start = 0.0
        if stream.start_time is not None and stream.time_base:
            start = float(stream.start_time * stream.time_base)
        return end - start if end - start > 0 else None
    return None


def declared_audio_seconds(source: str | Path | bytes, stream_index: int | None = None) -> float | None:
    """The declared duration of the audio stream (`decode_audio_stream`'s choice), without decoding.

    None when the stream declares none or the file cannot be read: it only tells "cut short"
    from "short", so it never raises; decoding reports the real problem.
    """
    import av

    try:
        opened, name = _open_source(source)
        with av.open(opened, mode="r", metadata_errors="ignore") as container:
            return _declared_duration(_select_stream(container, stream_index, name)[1])
    except Exception:  # noqa: BLE001 - a header we cannot read says nothing
        return None


def decode_audio_stream(
    source: str | Path | bytes,
    stream_index: int | None = None,
    *,
    mono: bool = False,
    stereo: bool = False,
    max_seconds: float | None = None,
) -> AudioStream:
    """Decode one audio stream (default the first; `stream_index` counts audio streams from 0).

    Samples are laid out by presentation timestamp (see the module docstring): decoder priming
    and edit lists as FFmpeg applies them, gaps filled with silence, overlaps dropped, and the
    encoder's end padding past the declared end cut. `mono` downmixes in FFmpeg while decoding
    (half the memory of stereo). Raises `AudioError` for a missing, empty, undecodable or
    sample-less source, a missing stream, or more than `max_seconds` of sound (never cut).
    `stereo` mixes more than two channels down to two in FFmpeg, with the standard matrix that
    `ffmpeg -ac 2` uses (5.1: centre and surrounds at -3 dB, LFE dropped, normalised so nothing
    clips); mono and stereo stay as they are.
    """
    import av  # deferred: importing PyAV costs ~0.1 s and not every caller decodes audio

    opened, name = _open_source(source)
    try:
        with av.open(opened, mode="r", metadata_errors="ignore") as container:
            index, stream = _select_stream(container, stream_index, name)
            if stream.codec_context is None:  # FFmpeg has no decoder for what the header declares
                raise AudioError(
                    f"audio stream {index} cannot be decoded: FFmpeg has no decoder for its format "
                    f"(a corrupt header, e.g. an impossible sample size): {name}"
                )
            rate = int(stream.codec_context.sample_rate or stream.rate or 0)
            if rate <= 0:
                raise AudioError(f"audio stream {index} declares no sample rate (corrupt header): {name}")
            channels = int(stream.codec_context.channels or 1)
            declared = _declared_duration(stream)
            frame_size = int(stream.codec_context.frame_size or 0)
            codec = stream.codec_context.name
            # Convert inside FFmpeg only to planar float (and mono if asked) at the source rate:
            # with no rate change swresample passes samples through without delay.
            layout = "mono" if mono else "stereo" if stereo and channels > 2 else None
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
            stream_count = len(container.streams.audio)
            placed = _PresentationBuffer(rate, max_seconds, name)
            try:
                for frame in container.decode(stream):
                    time_s = frame.time
                    for out in resampler.resample(frame):
                        placed.add(out.to_ndarray(), time_s)
                        time_s = None  # a second chunk from one frame follows the first
                for out in resampler.resample(None):
                    placed.add(out.to_ndarray(), None)
            except (av.error.FFmpegError, EOFError) as exc:
                if placed.length == 0:
                    raise
                # Sound decoded up to here, then the data ends or breaks: a file cut short.
                decoded_s = placed.length / rate
                if declared is not None and declared > decoded_s:
                    raise AudioError(
                        f"audio file is truncated: its header says {declared:.2f} s but only {decoded_s:.2f} s "
                        f"decode ({exc}); upload the complete file: {name}"
                    ) from None
                raise AudioError(
                    f"audio cannot be decoded past {decoded_s:.2f} s (corrupt data: {exc}): {name}"
                ) from None
    except AudioError:
        raise
    except av.error.InvalidDataError:
        raise AudioError(f"audio cannot be decoded (not an audio file, or corrupt): {name}") from None
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioError(f"audio cannot be decoded: {name} ({exc})") from None

    samples = placed.samples()
    if samples.shape[1] == 0:
        raise AudioError(f"audio holds no samples: {name}")
    if not np.isfinite(samples).all():
        raise AudioError(f"audio holds NaN or infinite samples: {name}")
    start = placed.start_s
    if declared is not None:
        # Only the codec's end padding is cut: a declared length that is an estimate (a VBR mp3
        # without a Xing header) may be seconds short, and real sound is never dropped for it.
        excess = samples.shape[1] - round(declared * rate)
        if 0 < excess <= MAX_END_PADDING_FRAMES * max(frame_size, 1024):
            samples = samples[:, : samples.shape[1] - excess]
    return AudioStream(samples, rate, start, index, stream_count, declared, codec, channels)


class _PresentationBuffer:
    """Collects decoded chunks where their timestamps put them (silence in gaps, overlaps dropped)."""

    def __init__(self, rate: int, max_seconds: float | None, name: str) -> None:
        self.rate = rate
        self.name = name
        self.max_seconds = max_seconds
        self.limit = None if max_seconds is None else int((max_seconds + 1) * rate)
        self.slack = max(1, round(TIMESTAMP_SLACK_S * rate))
        self.chunks: list[np.ndarray] = []
        self.length = 0
        self.start_s: float = 0.0
        self._started = False

    def add(self, chunk: np.ndarray, time_s: float | None) -> None:
        if chunk.shape[1] == 0:
            return
        if not self._started:
            self._started = True
            self.start_s = float(time_s) if time_s is not None and math.isfinite(time_s) else 0.0
        elif time_s is not None and math.isfinite(time_s):
            expected = round((time_s - self.start_s) * self.rate)
            gap = expected - self.length
            if gap > self.slack:
                if gap > MAX_GAP_S * self.rate:
                    raise AudioError(
                        f"audio timestamps jump by {gap / self.rate:.0f} s at {self.length / self.rate:.1f} s "
                        f"(corrupt file); re-export the audio: {self.name}"
                    )
                self._append(np.zeros((chunk.shape[0], gap), np.float32))
            elif gap < -self.slack:
                chunk = chunk[:, min(-gap, chunk.shape[1]) :]  # already presented: a player drops it too
        self._append(chunk.astype(np.float32, copy=False))

    def _append(self, chunk: np.ndarray) -> None:
        if chunk.shape[1] == 0:
            return
        self.chunks.append(chunk)
        self.length += chunk.shape[1]
        if self.limit is not None and self.length > self.limit:
            raise AudioError(
                f"audio is longer than the limit of {self.max_seconds:g} s; split the script "
                f"or raise the limit: {self.name}"
            )

    def samples(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros((1, 0), np.float32)
        return np.concatenate(self.chunks, axis=1)


def load_audio(
    source: str | Path | bytes,
    *,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    min_seconds: float = MIN_SECONDS,
    stream_index: int | None = None,
) -> AudioClip:
    """Decode `source` (a path or the file's bytes) to a 16 kHz mono `AudioClip`.

    Any file with an audio stream works, videos included (their picture is ignored); the first
    audio stream is used unless `stream_index` (counting audio streams from 0) says otherwise.
    The clip is that stream's presented sound from its first sample (`decode_audio_stream`).
    Raises `AudioError` for missing, empty, undecodable, too short or too long audio; audio
    over `max_seconds` is refused, never silently cut.
    """
    stream = decode_audio_stream(source, stream_index, mono=True, max_seconds=max_seconds)
    name = "audio bytes" if isinstance(source, (bytes, bytearray)) else str(source)
    samples = resample(stream.samples[0], stream.sample_rate, SAMPLE_RATE)
    clip = AudioClip(np.clip(samples, -1.0, 1.0), SAMPLE_RATE, stream.sample_rate, stream.source_channels)
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


def write_script_wav(source: str | Path | bytes, out_path: str | Path, *, stream_index: int | None = None) -> Path:
    """The script's presented sound at its own rate and channels, as a WAV starting at its first sample.

    This is the sound a video is muxed with, so the published track holds exactly the samples
    the generator listened to (`load_audio`), wherever the source's stream starts.
    """
    return decode_audio_stream(source, stream_index).write_wav(out_path)


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


# Silero VAD (the JIT model its wheel ships) run in numpy: the same weights and layers as
# `silero_vad.load_silero_vad()` (probabilities within 1e-4, identical segments; checked against
# it in tests/test_audio_vad.py), without torch, whose import alone takes ~1.4 s: a third of a
# short preview render. The layers are those of the package's own reference port
# (`silero_vad/tinygrad_model.py`); its safetensors file holds an older model, hence the JIT,
# read by `sonic_model/internals/silero.py` (a hook into silero's private archive layout).
VAD_CHUNK = 512  # samples per speech probability at 16 kHz (32 ms)
VAD_CONTEXT = 64  # samples of the previous chunk each chunk sees
VAD_FEATURE_BLOCK = 256  # chunks (8 s) the encoder runs on at once
VAD_THRESHOLD = 0.5  # speech starts at this probability ...
VAD_NEG_THRESHOLD = 0.35  # ... and ends below this one (silero's default: threshold - 0.15)
VAD_SPEECH_PAD_S = 0.030  # each segment is widened by this much (silero's default)


def _conv1d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """Conv1d (kernel 3, padding 1) on [chunks, time, channels]; weight is torch's [out, in, k]."""
    padded = np.pad(x, ((0, 0), (1, 1), (0, 0)))
    chunks, length = x.shape[0], (x.shape[1] - 1) // stride + 1
    out = np.broadcast_to(bias.astype(np.float32), (chunks * length, weight.shape[0])).copy()
    for k in range(weight.shape[2]):  # one GEMM per tap over all chunks and steps at once
        taps = np.ascontiguousarray(padded[:, k : k + stride * (length - 1) + 1 : stride]).reshape(chunks * length, -1)
        out += taps @ weight[:, :, k].T
    return np.maximum(out, 0.0, out=out).reshape(chunks, length, -1)


def _vad_features(inputs: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """The encoder's output [chunks, 128] for chunks of audio with their context [chunks, 576]."""
    chunks = inputs.shape[0]
    inputs = np.pad(inputs, ((0, 0), (0, 64)), mode="reflect")
    # STFT as a strided convolution (n_fft 256, hop 128), then magnitudes of its 129 bins
    stft = w["stft_conv.weight"][:, 0, :]
    windows = np.lib.stride_tricks.sliding_window_view(inputs, stft.shape[1], axis=1)[:, ::128]
    spectrum = (np.ascontiguousarray(windows).reshape(-1, stft.shape[1]) @ stft.T).reshape(chunks, -1, stft.shape[0])
    bins = stft.shape[0] // 2
    x = np.sqrt(spectrum[..., :bins] ** 2 + spectrum[..., bins:] ** 2)
    for name, stride in (("conv1", 1), ("conv2", 2), ("conv3", 2), ("conv4", 1)):
        x = _conv1d(x, w[f"{name}.weight"], w[f"{name}.bias"], stride)
    return x[:, 0, :]  # one time step is left per chunk


def speech_probabilities(samples: np.ndarray) -> np.ndarray:
    """Silero's speech probability for every 32 ms chunk of 16 kHz audio (the last one zero-padded)."""
    w = silero.vad_weights()
    samples = np.asarray(samples, np.float32)
    if w is None:  # the hook into silero's archive is off (its version is out of range): its own model
        return silero.probabilities_with_silero_model(samples, VAD_CHUNK)
    chunks = -(-len(samples) // VAD_CHUNK)
    if chunks == 0:
        return np.zeros(0, np.float32)
    padded = np.zeros(VAD_CONTEXT + chunks * VAD_CHUNK, np.float32)
    padded[VAD_CONTEXT : VAD_CONTEXT + len(samples)] = samples
    all_inputs = np.lib.stride_tricks.sliding_window_view(padded, VAD_CONTEXT + VAD_CHUNK)[::VAD_CHUNK][:chunks]
    # The encoder sees each chunk on its own, so it runs on blocks of chunks: its intermediate
    # arrays (~20 kB a chunk) then stay the same size however long the audio is.
    features = np.concatenate(
        [
            _vad_features(all_inputs[first : first + VAD_FEATURE_BLOCK], w)
            for first in range(0, chunks, VAD_FEATURE_BLOCK)
        ]
    )
    # LSTM cell over the chunks (torch's gate order: input, forget, cell, output)
    gates_in = features @ w["lstm_cell.weight_ih"].T + (w["lstm_cell.bias_ih"] + w["lstm_cell.bias_hh"])
    weight_hh = np.ascontiguousarray(w["lstm_cell.weight_hh"].T)
    size = weight_hh.shape[0]
    h = np.zeros(size, np.float32)
    c = np.zeros(size, np.float32)
    hidden = np.empty((chunks, size), np.float32)
    input_gate, forget_gate, cell_gate, output_gate = (slice(k * size, (k + 1) * size) for k in range(4))
    for index in range(chunks):
        gates = gates_in[index] + h @ weight_hh
        gate = _sigmoid(gates)  # the cell gate's share is unused: it takes tanh below
        c = gate[forget_gate] * c + gate[input_gate] * np.tanh(gates[cell_gate])
        h = gate[output_gate] * np.tanh(c)
        hidden[index] = h
    logits = np.maximum(hidden, 0.0) @ w["final_conv.weight"][0, :, 0] + w["final_conv.bias"][0]
    return _sigmoid(logits).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|


def segments_from_probabilities(
    probabilities: np.ndarray,
    num_samples: int,
    *,
    min_silence_s: float = 0.1,
    min_speech_s: float = 0.1,
    sample_rate: int = SAMPLE_RATE,
) -> list[tuple[int, int]]:
    """Speech intervals in samples: silero's `get_speech_timestamps_from_probs` without a length cap.

    Speech starts at a chunk >= `VAD_THRESHOLD`, ends after `min_silence_s` below
    `VAD_NEG_THRESHOLD`; segments of `min_speech_s` or less are dropped; each is padded by
    `VAD_SPEECH_PAD_S` (or half the gap to its neighbour when that is shorter).
    """
    min_silence = sample_rate * min_silence_s
    min_speech = sample_rate * min_speech_s
    pad = sample_rate * VAD_SPEECH_PAD_S
    speeches: list[list[int]] = []
    start: int | None = None
    silence_from = 0
    for index, probability in enumerate(np.asarray(probabilities, np.float64)):
        sample = VAD_CHUNK * index
        if probability >= VAD_THRESHOLD:
            silence_from = 0
            if start is None:
                start = sample
                continue
        if start is not None and probability < VAD_NEG_THRESHOLD:
            if not silence_from:
                silence_from = sample
            if sample - silence_from >= min_silence:
                if silence_from - start > min_speech:
                    speeches.append([start, silence_from])
                start, silence_from = None, 0
    if start is not None and num_samples - start > min_speech:
        speeches.append([start, num_samples])
    for index, speech in enumerate(speeches):
        if index == 0:
            speech[0] = int(max(0, speech[0] - pad))
        if index != len(speeches) - 1:
            gap = speeches[index + 1][0] - speech[1]
            if gap < 2 * pad:
                speech[1] += int(gap // 2)
                speeches[index + 1][0] = int(max(0, speeches[index + 1][0] - gap // 2))
            else:
                speech[1] = int(min(num_samples, speech[1] + pad))
                speeches[index + 1][0] = int(max(0, speeches[index + 1][0] - pad))
        else:
            speech[1] = int(min(num_samples, speech[1] + pad))
    return [(start, end) for start, end in speeches]


_LAST_PROBABILITIES: tuple | None = None  # (weakref to samples, length, probabilities)


def speech_segments(
    clip: AudioClip, *, min_silence_s: float = 0.1, min_speech_s: float = 0.1
) -> list[tuple[float, float]]:
    """Speech intervals [(start_s, end_s), ...] found by silero-vad (model shipped in its wheel)."""
    if clip.sample_rate != SAMPLE_RATE:
        raise ValueError(
            f"speech_segments needs {SAMPLE_RATE} Hz audio (load_audio resamples to it), got {clip.sample_rate} Hz"
        )
    # A render asks twice for the same clip (the generator, then lip-sync calibration): the
    # probabilities of the last clip seen are kept (keyed on the very array, held weakly).
    global _LAST_PROBABILITIES
    last = _LAST_PROBABILITIES
    if last is not None and last[0]() is clip.samples and last[1] == len(clip.samples):
        probabilities = last[2]
    else:
        probabilities = speech_probabilities(clip.samples)
        try:
            _LAST_PROBABILITIES = (weakref.ref(clip.samples), len(clip.samples), probabilities)
        except TypeError:  # not weak-referenceable (a view of a foreign buffer): no caching
            pass
    segments = segments_from_probabilities(
        probabilities, len(clip.samples), min_silence_s=min_silence_s, min_speech_s=min_speech_s
    )
    return [(start / clip.sample_rate, end / clip.sample_rate) for start, end in segments]
