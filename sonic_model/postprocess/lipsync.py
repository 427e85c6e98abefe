"""Lip-sync calibration: measure the audio-visual offset and cancel it by re-timing the sound.

The measurement is QA's own (`sonic_model.qa.estimate_av_offset`: mouth opening against the
speech envelope over speech frames; positive = picture late). The correction moves the audio,
never the picture: the H.264 stream is copied bit for bit (no second lossy video encode) and
the sound is encoded once, from the source it came from, delayed (picture late) or advanced
(picture early) and then padded with silence / trimmed at the far end so that it lasts exactly
as long as before. The file's duration therefore still equals the audio's within one frame.
The price: up to |offset| of sound at one end is cut (at most 8 frames = 320 ms, the search
window) — scripts start and end in silence, which is what is cut in practice.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sonic_model.audio import AudioClip, frame_envelope, speech_segments, write_script_wav
from sonic_model.encode import FPS, ffmpeg_executable
from sonic_model.errors import InputError, OutputError
from sonic_model.files import temporary_beside
from sonic_model.sync import (
    SHIFT_Z,
    ShiftTest,
    SyncMeasurement,
    estimate_av_offset,
    measure_av_sync,
    offset_beats_zero,
    speech_mask_for_frames,
)

# An override or correction beyond this is a mistake, not a sync error (QA searches ±600 ms).
MAX_AV_OFFSET_MS = 1000.0
# Automatic calibration moves the sound by at most this many frames (320 ms, the old search
# window). A confident peak further out is left alone, for QA to fail, rather than trusted to
# move the sound that far: on another recording's sound a chance peak can reach ±12 frames.
MAX_CALIBRATION_FRAMES = 8


def measure_offset_from_mouth(mouth_opening, audio: AudioClip, *, fps: float = FPS) -> SyncMeasurement:
    """QA's sync measurement on a mouth-opening series already gathered (one value per frame)."""
    envelope = frame_envelope(audio, fps)
    mask = speech_mask_for_frames(speech_segments(audio), len(envelope), fps)
    return estimate_av_offset(np.asarray(mouth_opening, np.float64), envelope, mask, fps=fps)


def calibration_shift(measurement: SyncMeasurement | None) -> ShiftTest:
    """Whether calibration moves the sound, and the figures it decided on.

    Only a confident estimate whose offset is significantly better than no offset
    (`sonic_model.sync.offset_beats_zero`: the correlation gain over lag 0 beyond 3 standard
    errors of the lag curve's noise) and within ±`MAX_CALIBRATION_FRAMES` is acted on. A correct
    render (offset 0, or ±1 by the curve's noise) is left as it is.
    """
    if measurement is None:
        return ShiftTest(0, float("nan"), float("nan"), SHIFT_Z, False)
    test = offset_beats_zero(measurement)
    if test.significant and abs(test.offset_frames) > MAX_CALIBRATION_FRAMES:
        return ShiftTest(test.offset_frames, test.gain, test.standard_error, test.z, False)
    return test


def calibration_figures(measurement: SyncMeasurement | None, test: ShiftTest) -> dict:
    """What calibration measured and decided, for the sidecar (`RenderResult.av_calibration`)."""
    if measurement is None:
        return {"status": "not measured", "shift": test.as_dict()}
    figures = measurement.figures()
    return {
        "status": figures["sync_status"],
        "unmeasured_reason": figures["sync_unmeasured_reason"],
        "offset_frames": figures["av_offset_frames"],
        "correlation": figures["sync_correlation"],
        "correlation_at_zero": figures["sync_correlation_at_zero"],
        "confidence": figures["sync_confidence"],
        "peak_margin": figures["sync_peak_margin"],
        "speech_s": figures["sync_speech_s"],
        "shift": test.as_dict(),
        "max_shift_frames": MAX_CALIBRATION_FRAMES,
    }


def audio_delay_ms(measurement: SyncMeasurement | None, override_ms: float | None, *, fps: float = FPS) -> float:
    """How far to delay the sound (ms; negative = advance) to cancel the offset.

    A manual override wins. Otherwise only what `calibration_shift` finds significant is acted
    on: an unsure estimate ("sync unmeasured") or a peak no better than lag 0 never moves sound.
    """
    if override_ms is not None:
        return float(override_ms)
    test = calibration_shift(measurement)
    if not test.significant:
        return 0.0
    return test.offset_frames * 1000.0 / fps


def shifted_audio_filter(delay_ms: float, duration_s: float) -> str:
    """ffmpeg audio filter: delay (or advance) by `delay_ms`, then exactly `duration_s` long."""
    if delay_ms > 0:
        shift = f"adelay=delays={delay_ms:.3f}:all=1"
    elif delay_ms < 0:
        shift = f"atrim=start={-delay_ms / 1000.0:.6f},asetpts=PTS-STARTPTS"
    else:
        shift = "anull"
    return f"{shift},apad,atrim=end={duration_s:.6f}"


def mux_shifted_audio(
    video_path: str | Path,
    audio_source: str | Path,
    out_path: str | Path,
    *,
    delay_ms: float,
    duration_s: float,
    extra_metadata: dict[str, str] | None = None,
    audio_bitrate: str = "128k",
    sample_rate: int | None = None,
    channels: int | None = None,
) -> Path:
    """Copy the video stream of `video_path` and add `audio_source`'s sound shifted by `delay_ms`.

    The sound keeps the source's rate and channels unless `sample_rate` / `channels` say
    otherwise (a rendition is always 48 kHz stereo; more channels are mixed down with ffmpeg's
    standard `-ac 2` matrix). The container's metadata (the AI-generated disclosure, the generator) is carried over.
    Written next to `out_path` and renamed, so `out_path` may be `video_path` itself.
    """
    out_path = Path(out_path)
    tmp = str(temporary_beside(out_path, ".retimed.mp4"))
    metadata = {"av_offset_applied_ms": f"{delay_ms:g}", **(extra_metadata or {})}
    # ffmpeg gets the source's presented sound as decoded here (first stream, from its first
    # sample), so the shift starts from exactly what was measured.
    presented = Path(tmp).with_suffix(".wav")
    try:
        write_script_wav(audio_source, presented)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        presented.unlink(missing_ok=True)
        raise
    streams = ["-i", str(video_path), "-i", str(presented), "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy"]
    sound = ["-af", shifted_audio_filter(delay_ms, duration_s), "-c:a", "aac", "-b:a", audio_bitrate]
    if sample_rate:
        sound += ["-ar", str(int(sample_rate))]
    if channels:
        sound += ["-ac", str(int(channels))]
    done = _mux(streams + sound, metadata, tmp)
    presented.unlink(missing_ok=True)
    if done.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OutputError(f"ffmpeg failed re-timing the audio (exit {done.returncode}): {lines[-1] if lines else ''}")
    _move_into_place(tmp, out_path)
    return out_path


def _mux(stream_args: list[str], metadata: dict[str, str], tmp: str) -> subprocess.CompletedProcess:
    """ffmpeg with `stream_args` into the MP4 `tmp`, the input's container metadata carried over
    plus `metadata`, faststart. An argument list, never a shell string."""
    args = [ffmpeg_executable(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *stream_args]
    args += ["-map_metadata", "0", "-movflags", "+faststart+use_metadata_tags"]
    for key, value in metadata.items():
        args += ["-metadata", f"{key}={value}"]
    args += ["-f", "mp4", tmp]
    return subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _move_into_place(tmp: str, out_path: Path) -> None:
    try:
        os.replace(tmp, out_path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"cannot write {out_path}: {exc.strerror or exc}") from None


def shift_audio_track(
    video_path: str | Path,
    out_path: str | Path,
    *,
    delay_ms: float,
    fps: float = FPS,
    extra_metadata: dict[str, str] | None = None,
) -> bool:
    """Move `video_path`'s audio track by `delay_ms` in the container, copying both streams.

    No sample is re-encoded (`-itsoffset` on a stream copy: the MP4 edit list carries the
    shift). Kept only when it repairs a delay of the track itself, i.e. afterwards the sound
    starts with the first frame (within half a frame) and ends no further from the last frame
    than before; a desync baked into the samples is left to `mux_shifted_audio`, which keeps
    the sound spanning the picture. Returns whether `out_path` was written.
    """
    from sonic_model.video_reader import Timeline, read_timeline

    out_path = Path(out_path)
    before = read_timeline(video_path)
    tmp = str(temporary_beside(out_path, ".shifted.mp4"))
    metadata = {"av_offset_applied_ms": f"{delay_ms:g}", **(extra_metadata or {})}
    shifted = ["-itsoffset", f"{delay_ms / 1000.0:.6f}", "-i", str(video_path)]
    streams = ["-i", str(video_path), *shifted, "-map", "0:v:0", "-map", "1:a:0", "-c", "copy"]
    done = _mux(streams, metadata, tmp)
    keep = False
    if done.returncode == 0:  # a codec MP4 cannot carry as is (PCM, ...) fails here: re-encode instead
        try:
            after = read_timeline(tmp)
        except InputError:
            after = Timeline(None, None, None, None)
        frame = 1.0 / fps
        spans = (before.sound_end_s, before.picture_end_s, after.sound_lead_s, after.sound_end_s, after.picture_end_s)
        if None not in spans:
            end_gap_before = abs(before.sound_end_s - before.picture_end_s)
            end_gap_after = abs(after.sound_end_s - after.picture_end_s)
            keep = abs(after.sound_lead_s) <= frame / 2 and end_gap_after <= max(end_gap_before, frame) + 1e-6
    if not keep:
        Path(tmp).unlink(missing_ok=True)
        return False
    _move_into_place(tmp, out_path)
    return True


def container_shift_ms(measured_delay_ms: float, sound_lead_s: float | None, *, fps: float = FPS) -> float:
    """The shift that cancels a container delay exactly, when the measurement points at one.

    The measurement is in whole frames; a track that starts `sound_lead_s` after the picture
    (as the container says) and a measured correction within half a frame of cancelling it (the
    measurement's own rounding) mean the lead is the desync: cancel it to the sample rather than
    to the nearest frame. Half a frame, not one: a track moved by a stream copy (`-itsoffset`)
    may keep its AAC priming in the presented span, so FFmpeg reports it starting 1024 samples
    (21 ms at 48 kHz) before its sound; trusting that start would leave the sound that much late.
    """
    if sound_lead_s is None or abs(sound_lead_s) < 0.001:
        return measured_delay_ms
    if abs(measured_delay_ms + sound_lead_s * 1000.0) <= 500.0 / fps:
        return -sound_lead_s * 1000.0
    return measured_delay_ms


def retime_audio_samples(in_path: str | Path, out_path: str | Path, *, delay_ms: float) -> Path:
    """Re-time the sound of `in_path` by re-encoding it from its own presented samples.

    The sound is read on the picture's timeline (sample 0 plays with the first frame), shifted
    by `delay_ms` and kept as long as it was, so it still ends where it ended.
    """
    from sonic_model.video_reader import audio_on_picture_timeline

    sound = audio_on_picture_timeline(in_path)
    if sound is None or sound.samples.shape[1] == 0:
        raise InputError(f"video has no audio to re-time during its picture: {in_path}")
    with tempfile.TemporaryDirectory(prefix="sonic-retime-") as folder:
        wav = sound.write_wav(Path(folder) / "sound.wav")
        return mux_shifted_audio(in_path, wav, out_path, delay_ms=delay_ms, duration_s=sound.duration_s)


def _finite_or_none(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


@dataclass(frozen=True)
class CalibrationReport:
    """What `calibrate_video` found and did (offsets in frames; positive = picture late)."""

    input_path: str
    output_path: str
    offset_before_frames: int
    correlation_before: float | None
    confident_before: bool
    applied_ms: float
    offset_after_frames: int
    correlation_after: float | None
    confident_after: bool
    copied_unchanged: bool
    fps: float
    # How the sound was moved: its track shifted in the container (no re-encode) or its samples
    # re-encoded; and where it starts against the first frame before and after (ms, + = later).
    audio_reencoded: bool = False
    sound_lead_before_ms: float | None = None
    sound_lead_after_ms: float | None = None
    # The figures the decision rested on (`calibration_figures`); empty with an override.
    decision: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def calibrate_video(
    in_path: str | Path,
    out_path: str | Path,
    *,
    av_offset_ms: float | None = None,
    frame_step: int = 1,
) -> CalibrationReport:
    """Re-time any talking-head video so its sound meets its mouth, and measure again.

    The offset is measured against the file's own sound. When nothing is to be done the file
    is copied byte for byte (no re-encode). Otherwise the video stream is copied and the sound
    (decoded from the input, the only source there is) is shifted and encoded once.
    """
    from sonic_model.video_reader import probe_video, read_timeline

    in_path, out_path = Path(in_path), Path(out_path)
    if av_offset_ms is not None and not abs(av_offset_ms) <= MAX_AV_OFFSET_MS:
        raise InputError(f"av_offset_ms={av_offset_ms} is out of range (at most ±{MAX_AV_OFFSET_MS:g} ms)")
    info = probe_video(in_path)
    if info.audio_codec is None:
        raise InputError(f"video has no audio track to re-time: {in_path}")
    fps = info.fps or float(FPS)
    # Measured on presentation time (`measure_av_sync` reads the sound on the picture's
    # timeline), before and after alike: the offset a player shows.
    before = measure_av_sync(in_path, frame_step=frame_step)
    lead_before = read_timeline(in_path).sound_lead_s
    delay = audio_delay_ms(before, av_offset_ms, fps=fps)
    decision = None if av_offset_ms is not None else calibration_figures(before, calibration_shift(before))
    reencoded = False
    lead_after = lead_before
    if delay == 0:
        if in_path.resolve() != out_path.resolve():
            _copy_atomically(in_path, out_path)
        after = before
    else:
        if av_offset_ms is None:
            delay = container_shift_ms(delay, lead_before, fps=fps)
        if not shift_audio_track(in_path, out_path, delay_ms=delay, fps=fps):
            retime_audio_samples(in_path, out_path, delay_ms=delay)
            reencoded = True
        after = measure_av_sync(out_path, frame_step=frame_step)
        lead_after = read_timeline(out_path).sound_lead_s
    return CalibrationReport(
        input_path=str(in_path),
        output_path=str(out_path),
        offset_before_frames=before.offset_frames,
        correlation_before=_finite_or_none(before.correlation),
        confident_before=before.confident,
        applied_ms=round(delay, 3),
        offset_after_frames=after.offset_frames,
        correlation_after=_finite_or_none(after.correlation),
        confident_after=after.confident,
        copied_unchanged=delay == 0,
        fps=fps,
        audio_reencoded=reencoded,
        sound_lead_before_ms=None if lead_before is None else round(lead_before * 1000.0, 3),
        sound_lead_after_ms=None if lead_after is None else round(lead_after * 1000.0, 3),
        decision=decision,
    )


def _copy_atomically(source: Path, target: Path) -> None:
    tmp = temporary_beside(target, ".partial.mp4")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}") from None
