"""Quality checks of a rendered talking-head video: `check_video` and one `_check_*` per concern.

`check_video` decodes the picture once, streaming (one frame in memory at a time), and gathers
everything per frame in that single pass: face mesh landmarks (tracked, so about one small mesh
inference per frame), mouth opening, mean luminance, a tiny grey thumbnail for frame-to-frame
change, and a few frames for the identity check. The audio track of the file is decoded
separately (cheap) for loudness, clipping and the sync envelope. It never raises for a bad
video: every problem becomes a specific line in `QAResult.failures`. Sync sign convention:
see `sonic_model.sync`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from sonic_model.audio import (
    SAMPLE_RATE,
    AudioClip,
    frame_envelope,
    resample,
    speech_segments,
)
from sonic_model.encode import FPS
from sonic_model.errors import InputError, NoFaceError
from sonic_model.qa.identity import portrait_face
from sonic_model.qa.loudness import decode_audio_track, integrated_loudness, true_peak_dbtp
from sonic_model.qa.picture import PictureStats, head_jitter, scan_picture
from sonic_model.qa.result import QAResult
from sonic_model.qa.thresholds import QAThresholds
from sonic_model.sync import (
    SyncMeasurement,
    at_reference_level,
    estimate_av_offset,
    interpolate_gaps,
    speech_mask_for_frames,
)

# A JSON-able stand-in for "no sound at all" (JSON has no -inf).
SILENCE_LUFS = -120.0


def check_video(
    video_path: str | Path,
    portrait_rgb: np.ndarray,
    audio: AudioClip,
    thresholds: QAThresholds | dict[str, Any] | None = QAThresholds(),
    *,
    still_reference: np.ndarray | None = None,
) -> QAResult:
    """Run every QA check on a rendered video against its portrait and script audio.

    `thresholds` may also be a dict of overrides of the defaults (or None for the defaults).
    `still_reference` is the still picture the video's frames were composited into (the
    portrait for paste-back, the rendition's canvas for a rendition; [H, W, 3] RGB of the
    video's size): with it, the video is checked for seams; without it (a generator's own
    crop, nothing composited) the seam figure is "n/a".
    Never raises for a bad video (an unreadable file is one failure); raises only for a
    broken environment (missing face models) or unknown threshold names (`InputError`).
    Figures are rounded for the sidecar.
    """
    from sonic_model.video_reader import probe_video

    if not isinstance(thresholds, QAThresholds):
        thresholds = QAThresholds().with_overrides(thresholds)

    failures: list[str] = []
    figures: dict[str, float | int | str] = {}
    try:
        info = probe_video(video_path)
    except InputError as exc:
        return QAResult(False, [str(exc)], {"readable": "no"})

    fps = info.fps or float(FPS)
    _check_container(info, audio, thresholds, failures, figures)

    descriptor, rest_opening = _portrait_reference(portrait_rgb, failures)
    import av

    seams = None
    if still_reference is not None:
        from sonic_model.qa.seams import SeamMeter

        seams = SeamMeter(still_reference)
        if not seams.fits((info.height, info.width)):
            failures.append(
                f"picture is {info.width}x{info.height} but its still reference is "
                f"{still_reference.shape[1]}x{still_reference.shape[0]}: seams not measurable"
            )
            seams = None
    try:
        picture = scan_picture(video_path, info.num_frames, thresholds, descriptor, seams=seams)
    except (av.error.FFmpegError, OSError, EOFError) as exc:  # a corrupt file, not a crash
        failures.append(f"video cannot be decoded to the end: {exc}")
        return QAResult(False, failures, figures)

    track = _safe_decode_track(video_path, failures)
    sound = _sync_reference(track, audio)
    envelope = frame_envelope(sound, fps)
    speech = speech_mask_for_frames(speech_segments(sound), len(envelope), fps)
    mouth = np.asarray(picture.mouth, np.float64)
    if thresholds.landmark_frame_step > 1:
        mouth = interpolate_gaps(mouth, max_gap=thresholds.landmark_frame_step)
    sync = measure_sync(mouth, envelope, speech, thresholds, fps=fps)

    _check_sync(sync, thresholds, failures, figures)
    _check_silences(mouth, speech, rest_opening, fps, thresholds, failures, figures)
    _check_face_and_identity(picture, descriptor is not None, thresholds, failures, figures)
    _check_picture_stability(picture, speech, thresholds, failures, figures)
    _check_audio_track(track, thresholds, failures, figures)
    _check_seams(seams, thresholds, failures, figures)

    return QAResult(
        passed=not failures,
        failures=failures,
        figures=figures,
        mouth_series=[None if not math.isfinite(v) else round(float(v), 4) for v in mouth],
        envelope_series=[round(float(v), 5) for v in envelope],
        speech_series=[bool(v) for v in speech],
        fps=fps,
    )


def _check_container(info, audio: AudioClip, t: QAThresholds, failures: list[str], figures: dict) -> None:
    fps = info.fps or float(FPS)
    figures.update(
        video_codec=info.video_codec,
        pix_fmt=info.pix_fmt,
        audio_codec=info.audio_codec or "none",
        fps=round(fps, 3),
        width=info.width,
        height=info.height,
        num_frames=info.num_frames,
        video_duration_s=round(info.video_duration_s, 4),
        audio_duration_s=round(audio.duration_s, 4),
    )
    if info.video_codec != t.expected_video_codec:
        failures.append(f"video codec is {info.video_codec}, expected {t.expected_video_codec}")
    if info.pix_fmt != t.expected_pix_fmt:
        failures.append(f"pixel format is {info.pix_fmt}, expected {t.expected_pix_fmt}")
    if (info.audio_codec or "none") != t.expected_audio_codec:
        failures.append(
            f"audio codec is {info.audio_codec or 'none (no audio track)'}, expected {t.expected_audio_codec}"
        )
    if abs(fps - t.expected_fps) > 0.01:
        failures.append(f"frame rate is {fps:.3f} fps, expected {t.expected_fps:g}")
    if min(info.width, info.height) < t.min_short_side:
        failures.append(f"picture is {info.width}x{info.height}, short side below the minimum {t.min_short_side} px")
    for name, actual, expected in (("width", info.width, t.expected_width), ("height", info.height, t.expected_height)):
        if expected is not None and actual != expected:
            failures.append(f"picture {name} is {actual} px, expected {expected}")
    mismatch = abs(info.video_duration_s - audio.duration_s) * fps
    figures["duration_mismatch_frames"] = round(mismatch, 3)
    if mismatch > t.max_duration_mismatch_frames:
        failures.append(
            f"video lasts {info.video_duration_s:.3f} s, audio {audio.duration_s:.3f} s: off by "
            f"{mismatch:.2f} frames (max {t.max_duration_mismatch_frames:g})"
        )
    if info.audio_duration_s is not None:
        track_mismatch = abs(info.audio_duration_s - audio.duration_s) * fps
        figures["track_duration_mismatch_frames"] = round(track_mismatch, 3)
        if track_mismatch > t.max_duration_mismatch_frames:
            failures.append(
                f"audio track lasts {info.audio_duration_s:.3f} s, script audio {audio.duration_s:.3f} s: off by "
                f"{track_mismatch:.2f} frames (max {t.max_duration_mismatch_frames:g})"
            )


def _portrait_reference(portrait_rgb: np.ndarray, failures: list[str]) -> tuple[np.ndarray | None, float]:
    try:
        return portrait_face(portrait_rgb)
    except NoFaceError as exc:
        failures.append(f"portrait has no usable face, identity not checked: {exc}")
        return None, 0.0


def _safe_decode_track(video_path: str | Path, failures: list[str]) -> tuple[np.ndarray, int] | None:
    try:
        track = decode_audio_track(video_path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a property of this file
        failures.append(f"audio track cannot be decoded: {exc}")
        return None
    return track


def _sync_reference(track: tuple[np.ndarray, int] | None, audio: AudioClip) -> AudioClip:
    """Sync is measured against what the viewer hears: the file's own track, else the script;
    at a reference level (`sonic_model.sync.at_reference_level`), so normalising the sound's
    loudness does not move the sync figures."""
    if track is None or len(track[0]) == 0:
        return at_reference_level(audio)
    samples, rate = track
    mono = resample(samples.mean(axis=1).astype(np.float32), rate, SAMPLE_RATE)
    return at_reference_level(AudioClip(np.clip(mono, -1.0, 1.0), SAMPLE_RATE, rate, samples.shape[1]))


def measure_sync(mouth, envelope, speech, t: QAThresholds, *, fps: float = float(FPS)) -> SyncMeasurement:
    """QA's sync estimate with these thresholds' search window and confidence rules."""
    return estimate_av_offset(
        mouth,
        envelope,
        speech,
        max_lag_frames=t.max_sync_search_frames,
        min_speech_s=t.min_sync_speech_s,
        min_confidence=t.min_sync_confidence,
        min_peak_margin=t.min_sync_peak_margin,
        fps=fps,
    )


def sync_failures(sync: SyncMeasurement, t: QAThresholds) -> list[str]:
    """What is wrong with a video's lip sync, from its estimate ([] = nothing found).

    With at least `min_sync_speech_s` of speech: a mouth that barely moves fails (a frozen
    face), and so does a best correlation below `min_sync_correlation` at every lag. A confident
    estimate fails when its offset, to a fraction of a frame, is beyond
    `max_abs_av_offset_frames`. An unsure one ("sync unmeasured") is not a failure, except with
    `min_sync_follow_speech_s` of speech or more and no lag within ±`max_abs_av_offset_frames`
    reaching `min_sync_follow_z` noise units: then the curve shows the mouth does not follow this
    sound in tolerance (another row's audio, a large offset) even though it cannot say where its
    peak is. Whatever the estimate, the whole clip (speech and pauses) must reach
    `min_sync_whole_clip_correlation` within tolerance (`_whole_clip_failures`).
    """
    failures: list[str] = []
    enough = sync.speech_s >= t.min_sync_speech_s
    if enough and not sync.mouth_motion >= t.min_sync_mouth_motion:
        motion = f"{sync.mouth_motion:.4f}" if math.isfinite(sync.mouth_motion) else "none"
        failures.append(
            f"mouth does not move during speech: opening spread {motion} over {sync.speech_s:.1f} s of speech "
            f"(min {t.min_sync_mouth_motion:g})"
        )
        return failures
    best = sync.correlation if math.isfinite(sync.correlation) else 0.0
    if enough and best < t.min_sync_correlation:
        failures.append(
            f"mouth does not follow the speech: best sync correlation {best:.2f} within ±{t.max_sync_search_frames} "
            f"frames below the minimum {t.min_sync_correlation:g} ({sync.speech_s:.1f} s of speech)"
        )
        return failures
    if sync.confident:
        # the peak to a fraction of a frame: a 2.5-frame offset is beyond a 2-frame tolerance
        offset = sync.offset_subframe
        if abs(offset) > t.max_abs_av_offset_frames:
            side = "late" if offset > 0 else "early"
            frames = f"{abs(offset):.1f}".removesuffix(".0")
            failures.append(
                f"picture is {frames} frames ({abs(offset) * 1000.0 / sync.fps:.0f} ms) {side} against the audio "
                f"(av offset {sync.offset_frames:+d}, {offset:+.2f} to a fraction of a frame, max "
                f"±{t.max_abs_av_offset_frames}; sync confidence {sync.confidence:.1f})"
            )
        return failures + _whole_clip_failures(sync, t)
    within = sync.correlation_within(t.max_abs_av_offset_frames)
    within_z = within / sync.noise if math.isfinite(sync.noise) and sync.noise > 0 else math.inf
    if sync.speech_s >= t.min_sync_follow_speech_s and not within_z >= t.min_sync_follow_z:
        failures.append(
            f"mouth does not follow the speech within ±{t.max_abs_av_offset_frames} frames: best correlation "
            f"there {within:.2f}, {within_z:.1f} times the lag curve's noise over {sync.speech_s:.1f} s of speech "
            f"(min {t.min_sync_follow_z:g})"
        )
    return failures + _whole_clip_failures(sync, t)


def _whole_clip_failures(sync: SyncMeasurement, t: QAThresholds) -> list[str]:
    """With `min_sync_speech_s` of speech or more: the mouth against this sound's level over the
    whole clip, pauses included (`sonic_model.sync.whole_clip_correlation`), best within
    ±max_abs_av_offset_frames. Below `min_sync_whole_clip_correlation` it fails; below
    `sync_whole_clip_clear_correlation` it fails unless that best lag stands at least
    `min_sync_whole_clip_prominence` above the curve's median (a real but weak peak near 0, as a
    continuous human sentence gives, against another sound's flat curve). A mouth made for
    another sound moves in this one's pauses and rests in its speech."""
    if sync.speech_s < t.min_sync_speech_s:
        return []
    lags = t.max_abs_av_offset_frames
    whole = sync.whole_clip_correlation_within(lags)
    prominence = sync.whole_clip_prominence_within(lags)
    if whole >= t.sync_whole_clip_clear_correlation:
        return []
    if whole >= t.min_sync_whole_clip_correlation and prominence >= t.min_sync_whole_clip_prominence:
        return []
    shown = f"{whole:.2f}" if math.isfinite(whole) else "n/a"
    if math.isfinite(whole) and whole >= t.min_sync_whole_clip_correlation:
        why = (
            f"whole-clip correlation {shown}, only {prominence:.2f} above the curve's median (min "
            f"{t.min_sync_whole_clip_prominence:g} below {t.sync_whole_clip_clear_correlation:g})"
        )
    else:
        why = f"whole-clip correlation {shown} (min {t.min_sync_whole_clip_correlation:g})"
    return [
        f"mouth does not follow this sound's speech and pauses within ±{lags} frames: {why}, "
        f"{sync.speech_s:.1f} s of speech; is this the row's own audio?"
    ]


def _check_sync(sync: SyncMeasurement, t: QAThresholds, failures: list[str], figures: dict) -> None:
    figures["speech_frames"] = int(sync.speech_mask.sum())
    figures.update(sync.figures())
    figures.update(sync.whole_clip_figures(t.max_abs_av_offset_frames))
    found = sync_failures(sync, t)
    failures.extend(found)
    if found:
        figures["sync_unmeasured_reason"] = ""
        figures["sync_status"] = "failed"


def silences(speech: np.ndarray, min_frames: int) -> list[tuple[int, int]]:
    """Runs [start, end) of non-speech frames at least `min_frames` long."""
    return [(start, end) for start, end in true_runs(~np.asarray(speech, bool)) if end - start >= min_frames]


def true_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[::2], edges[1::2], strict=False))


def _check_silences(mouth, speech, rest_opening: float, fps: float, t: QAThresholds, failures, figures) -> None:
    # Coarticulation: the mouth may still close / already open ~80 ms into a pause.
    trim = int(round(0.08 * fps))
    worst, worst_at = -math.inf, None
    for start, end in silences(speech, int(math.ceil(t.min_silence_s * fps))):
        interior = mouth[start + trim : end - trim]
        interior = interior[np.isfinite(interior)]
        if interior.size == 0:
            continue
        median = float(np.median(interior))
        if median > worst:
            worst, worst_at = median, (start, end)
    figures["portrait_mouth_opening"] = round(rest_opening, 4)
    if worst_at is None:
        figures["silence_mouth_opening"] = "n/a"
        return
    excess = worst - rest_opening
    figures["silence_mouth_opening"] = round(worst, 4)
    figures["silence_mouth_opening_excess"] = round(excess, 4)
    if excess > t.max_silence_mouth_opening_excess:
        start, end = worst_at
        failures.append(
            f"mouth stays open in the pause {start / fps:.2f}-{end / fps:.2f} s: opening {worst:.3f} is "
            f"{excess:.3f} above the portrait's {rest_opening:.3f} (max {t.max_silence_mouth_opening_excess:g})"
        )


def _check_face_and_identity(picture: PictureStats, has_reference: bool, t: QAThresholds, failures, figures) -> None:
    ratio = picture.face_found / picture.face_sampled if picture.face_sampled else 0.0
    figures["face_present_ratio"] = round(ratio, 4)
    figures["face_sampled_frames"] = picture.face_sampled
    if ratio < t.min_face_present_ratio:
        missing = picture.face_sampled - picture.face_found
        failures.append(
            f"no face in {missing} of {picture.face_sampled} sampled frames: present ratio {ratio:.3f} "
            f"(min {t.min_face_present_ratio:g})"
        )
    if not has_reference:
        return
    if not picture.identity_distances:
        figures["identity_distance"] = "n/a"
        failures.append("identity not measurable: no face in any identity sample frame")
        return
    distance = max(picture.identity_distances)
    figures["identity_distance"] = round(distance, 4)
    if distance > t.max_identity_distance:
        failures.append(
            f"face is not the portrait's person: identity distance {distance:.2f} above the maximum "
            f"{t.max_identity_distance:g} (dlib 128-d)"
        )


def _check_picture_stability(picture: PictureStats, speech: np.ndarray, t: QAThresholds, failures, figures) -> None:
    luma = np.asarray(picture.luma)
    jumps = np.abs(np.diff(luma)) if len(luma) > 1 else np.zeros(0)
    max_jump = float(jumps.max()) if jumps.size else 0.0
    figures["max_luma_jump"] = round(max_jump, 3)
    figures["mean_luma"] = round(float(luma.mean()), 2) if luma.size else 0.0
    if max_jump > t.max_luma_jump:
        at = int(np.argmax(jumps)) + 1
        failures.append(
            f"flicker: mean luminance jumps by {max_jump:.1f} (of 255) at frame {at} (max {t.max_luma_jump:g})"
        )
    black = np.flatnonzero(luma < t.black_luma)
    figures["black_frames"] = int(black.size)
    if black.size > t.max_black_frames:
        failures.append(
            f"{black.size} black frame(s) (mean luminance < {t.black_luma:g}), first at frame {int(black[0])} "
            f"(max {t.max_black_frames})"
        )
    jitter = head_jitter(np.asarray(picture.head))
    figures["head_jitter"] = round(jitter, 5) if math.isfinite(jitter) else "n/a"
    if math.isfinite(jitter) and jitter > t.max_head_jitter:
        failures.append(
            f"head jitters: frame-to-frame acceleration {jitter:.3f} eye-distances RMS (max {t.max_head_jitter:g})"
        )
    run, run_at = _longest_frozen_run(np.asarray(picture.change), speech, t.frozen_pixel_tolerance)
    figures["longest_frozen_run_frames"] = run
    if run > t.max_frozen_run_frames:
        failures.append(
            f"frozen picture during speech: {run} identical frames from frame {run_at} (max {t.max_frozen_run_frames})"
        )


def _longest_frozen_run(change: np.ndarray, speech: np.ndarray, tolerance: float) -> tuple[int, int]:
    """Longest run of frames identical to their predecessor, counted on speech frames only.

    A run of k repeated frames is k + 1 identical frames; returns (length, first frame).
    """
    count = min(len(change), len(speech))
    best, best_at, length, start = 0, 0, 0, 0
    for index in range(count):
        if speech[index] and change[index] < tolerance:
            if length == 0:
                start = index - 1
            length += 1
            if length + 1 > best:
                best, best_at = length + 1, max(start, 0)
        else:
            length = 0
    return best, best_at


def _check_audio_track(track: tuple[np.ndarray, int] | None, t: QAThresholds, failures, figures) -> None:
    if track is None or len(track[0]) == 0:
        figures["loudness_lufs"] = "n/a"
        failures.append("no audio in the file to measure loudness")
        return
    samples, rate = track
    loudness = integrated_loudness(samples, rate)
    loudness = max(loudness, SILENCE_LUFS)
    clipping = float((np.abs(samples) >= 0.999).any(axis=1).mean())
    peak = float(np.abs(samples).max())
    figures["loudness_lufs"] = round(loudness, 2)
    figures["clipping_ratio"] = round(clipping, 6)
    figures["peak_dbfs"] = round(20 * math.log10(peak), 2) if peak > 0 else SILENCE_LUFS
    if t.loudness_target_lufs is not None:
        # The render normalised the sound: it must be at the target, its true peak under the ceiling.
        true_peak = true_peak_dbtp(samples)
        figures["true_peak_dbtp"] = round(true_peak, 2) if math.isfinite(true_peak) else SILENCE_LUFS
        figures["loudness_target_lufs"] = t.loudness_target_lufs
        low, high = t.loudness_target_lufs - t.loudness_tolerance_lu, t.loudness_target_lufs + t.loudness_tolerance_lu
        if not low <= loudness <= high:
            failures.append(
                f"audio loudness {loudness:.1f} LUFS is off the target {t.loudness_target_lufs:g} LUFS "
                f"(allowed {low:g} to {high:g})"
            )
        if true_peak > t.max_true_peak_dbtp:
            failures.append(f"audio true peak {true_peak:.2f} dBTP is over the ceiling {t.max_true_peak_dbtp:g} dBTP")
    elif loudness < t.min_loudness_lufs:
        quiet = "silent" if loudness <= SILENCE_LUFS else "too quiet"
        failures.append(f"audio is {quiet}: loudness {loudness:.1f} LUFS below the minimum {t.min_loudness_lufs:g}")
    elif loudness > t.max_loudness_lufs:
        failures.append(f"audio is too loud: loudness {loudness:.1f} LUFS above the maximum {t.max_loudness_lufs:g}")
    if clipping > t.max_clipping_ratio:
        failures.append(
            f"audio clips: {clipping * 100:.2f} % of samples at full scale (max {t.max_clipping_ratio * 100:g} %)"
        )


def _check_seams(seams, t: QAThresholds, failures: list[str], figures: dict) -> None:
    if seams is None or not seams.frames:
        figures["seam_strength"] = "n/a"
        return
    strength = seams.strength
    figures["seam_strength"] = round(strength, 3)
    figures["seam_frames"] = seams.frames
    if strength > t.max_seam_strength:
        failures.append(
            f"visible seam where the animated face was composited: {seams.where()}, a step of "
            f"{strength:.1f} grey levels the portrait does not have (max {t.max_seam_strength:g})"
        )
