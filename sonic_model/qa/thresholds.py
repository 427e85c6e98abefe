"""What a video must satisfy to be published: `QAThresholds`, each default with its source."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from sonic_model.captions.checks import MIN_SCRIPT_MATCH
from sonic_model.encode import FPS
from sonic_model.errors import InputError
from sonic_model.sync import MIN_SYNC_CONFIDENCE, MIN_SYNC_PEAK_MARGIN, MIN_SYNC_SPEECH_S, SYNC_SEARCH_FRAMES


@dataclass(frozen=True)
class QAThresholds:
    """What a video must satisfy to be published. Every default is documented by its comment.

    Change them per run with `QAThresholds().with_overrides({"min_sync_correlation": 0.2})`.
    """

    # Container: the catalog's delivery format (docs/cli.md "Every video is H.264 (yuv420p) + AAC at 25 fps").
    expected_video_codec: str = "h264"
    expected_pix_fmt: str = "yuv420p"
    expected_audio_codec: str = "aac"
    expected_fps: float = float(FPS)
    # Picture size: the short side must be at least this (the generators' smallest output is 256);
    # an exact size can be demanded with expected_width/expected_height (None = any).
    min_short_side: int = 256
    expected_width: int | None = None
    expected_height: int | None = None
    # Duration: the video must last as long as the script audio to within one frame (the encoder's contract).
    max_duration_mismatch_frames: float = 1.0
    # Sync: a viewer notices lips ~45 ms early or ~125 ms late (ITU-R BT.1359); 2 frames = 80 ms.
    # Compared with the offset read to a fraction of a frame (SyncMeasurement.offset_subframe).
    max_abs_av_offset_frames: int = 2
    # Sync estimate (sonic_model/sync.py): the lag curve of mouth opening against the speech
    # envelope over every speech frame, its peak and a confidence. Set by the study
    # (benchmarks/sync_study.py; figures in docs/qa-sync.md). Last run, preview 1.2 with human
    # speech (2026-12-06): on 367 good preview renders (5 presenters; 317 espeak-ng in 13
    # languages, 0.5-60 s; 50 human, LibriVox sentences alone and read on, 3-25 s) 0 false
    # failures (every clip under 2 s of speech "unmeasured"); with >= 3 s of speech every sound
    # shifted 3-12 frames, every swapped sound (espeak-ng and human both ways) and every frozen
    # mouth caught; confident injected offsets within 1 frame 99.5%; calibration shifted no good
    # render.
    # Lags searched either way (±15 frames = ±600 ms, SyncNet's window).
    max_sync_search_frames: int = SYNC_SEARCH_FRAMES
    # Below this much speech (seconds of speech frames with a face) sync is "unmeasured", never failed.
    min_sync_speech_s: float = MIN_SYNC_SPEECH_S
    # A peak is trusted when it stands this many noise units (the lag curve's chance level,
    # sonic_model.sync.lag_curve_noise) over the curve's median (SyncNet's confidence) and this
    # many over any other local peak >= 3 frames away.
    min_sync_confidence: float = MIN_SYNC_CONFIDENCE
    min_sync_peak_margin: float = MIN_SYNC_PEAK_MARGIN
    # With at least `min_sync_speech_s` of speech, a best correlation under this at every lag fails.
    min_sync_correlation: float = 0.1
    # With at least `min_sync_follow_speech_s` of speech and no confident peak, no lag within
    # ±max_abs_av_offset_frames reaching `min_sync_follow_z` noise units means the mouth does not
    # follow this sound within tolerance (another row's audio).
    min_sync_follow_speech_s: float = 3.0
    min_sync_follow_z: float = 1.5
    # With at least `min_sync_speech_s` of speech, the mouth against the sound's level in dB over
    # the whole clip, pauses silent (sonic_model.sync.whole_clip_correlation), best within
    # ±max_abs_av_offset_frames: below `min_sync_whole_clip_correlation` fails; below
    # `sync_whole_clip_clear_correlation` fails unless that best lag stands
    # `min_sync_whole_clip_prominence` above the whole-clip curve's median (a mouth made for
    # another row's audio moves in this sound's pauses and rests in its speech, at every lag alike).
    # Set by the study with human speech (docs/qa-sync.md, 2026-12-06): the single floor of 0.45
    # fitted on espeak-ng failed 2 of 50 good human renders (LibriVox sentences, one unbroken
    # phrase each: 0.405 and 0.439); good renders with >= 2 s of speech 0.405-0.833, their
    # prominence >= 0.334 wherever the correlation is under 0.55; another row's sound up to 0.526,
    # with >= 3 s of speech its prominence 0.03-0.28 wherever it is over 0.35 (the closest caught
    # at 0.276). This rule fails 0/219 good renders and, with the rules above, catches 337/337
    # swapped sounds with >= 3 s of speech (0.45 alone: 335/337 and 2 false failures). A whole
    # grid (floor 0.30-0.38, clear 0.50-0.60, prominence 0.25-0.30) fails no good render and
    # catches >= 98.8%: these sit mid-plateau.
    min_sync_whole_clip_correlation: float = 0.35
    sync_whole_clip_clear_correlation: float = 0.55
    min_sync_whole_clip_prominence: float = 0.28
    # Spread (std) of the mouth opening over speech below this: the mouth does not move.
    min_sync_mouth_motion: float = 0.01
    # Closed mouth in silence: in every pause of at least `min_silence_s`, the median mouth opening
    # (inner-lip gap / eye-corner distance) may exceed the portrait's own by at most this much.
    # Measured relative to the portrait because a smiling photo shows teeth at rest (~0.1).
    min_silence_s: float = 0.3
    max_silence_mouth_opening_excess: float = 0.06
    # Face present: fraction of sampled frames where the face mesh finds the face.
    min_face_present_ratio: float = 1.0
    # Every n-th frame gets landmarks (1 = all; the tracker costs ~1 ms per frame).
    landmark_frame_step: int = 1
    # Identity: dlib 128-d descriptor distance to the portrait (same person 0.1-0.2, different
    # people 0.7-0.9; 0.6 is dlib's own threshold). Measured on `identity_samples` spread frames.
    max_identity_distance: float = 0.6
    identity_samples: int = 3
    # Flicker: largest jump of mean luminance (0-255) between consecutive frames. A talking head
    # under fixed light changes by < 2; a visible flash is > 8.
    max_luma_jump: float = 8.0
    # Frozen: frames whose 64x64 grey thumbnails differ by less than `frozen_pixel_tolerance`
    # (0-255) everywhere are "the same frame" (H.264 re-codes a repeated frame with changes of
    # 1-3 levels; a moving mouth changes its thumbnail pixels by 10-150); during speech, runs
    # of them longer than this fail (12 frames = 0.48 s of a still picture while someone talks).
    frozen_pixel_tolerance: float = 4.0
    max_frozen_run_frames: int = 12
    # Jitter: RMS frame-to-frame acceleration of the head (mean of rigid landmarks: eye corners,
    # nose bridge and tip), in units of the eye-corner distance. Measured here: a still head whose
    # mouth talks reads ~0.012 (mesh noise); the same with a random 2 px (sd) shake per frame 0.058.
    max_head_jitter: float = 0.025
    # Black frames: mean luminance below `black_luma` (0-255); none allowed.
    black_luma: float = 16.0
    max_black_frames: int = 0
    # Audio: integrated loudness (ITU-R BS.1770 K-weighted, gated) of the track in the file.
    # Speech for the web is mastered around -16..-23 LUFS; outside -35..-8 it is broken or silent.
    min_loudness_lufs: float = -35.0
    max_loudness_lufs: float = -8.0
    # With a loudness target (the render normalised the sound to it: sonic_model.loudness), the
    # range is the target +- `loudness_tolerance_lu` instead (normalisation lands within 0.2 LU;
    # the AAC encode moves it by a few hundredths), and the true peak must stay at or under
    # `max_true_peak_dbtp` (EBU R128's ceiling for delivery). None = no target: the range above.
    loudness_target_lufs: float | None = None
    loudness_tolerance_lu: float = 1.0
    max_true_peak_dbtp: float = -1.0
    # Samples at or above full scale (|x| >= 0.999): more than 0.1 % is audible distortion.
    max_clipping_ratio: float = 0.001

    # Seams (sonic_model/qa/seams.py): where generated frames were composited into a still
    # picture (paste-back, renditions), the largest straight step along the composited edge,
    # in grey levels, averaged over every `seam_frame_step`-th frame. Measured here: soft
    # composites 1.4-2.3, the same frames pasted with a hard rectangle 12.7-22.6.
    max_seam_strength: float = 8.0
    seam_frame_step: int = 5

    # Captions (sonic_model/captions/checks.py): a row whose script-vs-audio match (standard
    # deviations by which the script's warp path beats the reversed synthetic speech's) is under
    # this fails: its audio does not speak its script. Set by benchmarks/caption_alignment.py
    # (docs/captions.md); a narrator much slower than the study's reader can score under it with
    # the right script (docs/captions.md "Slow narrators"), and a run may lower it.
    min_script_match: float = MIN_SCRIPT_MATCH

    def with_overrides(self, overrides: dict[str, Any] | None) -> QAThresholds:
        """A copy with some values changed; unknown names or wrong types raise `InputError`."""
        if not overrides:
            return self
        known = {f.name: f for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise InputError(f"unknown QA threshold(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        converted = {name: _convert_threshold(name, value, getattr(self, name)) for name, value in overrides.items()}
        return dataclasses.replace(self, **converted)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert_threshold(name: str, value: Any, default: Any) -> Any:
    """Coerce an override to the default's type (CLI and manifests give strings and floats)."""
    if value is None:
        if name in ("expected_width", "expected_height", "loudness_target_lufs"):
            return None
        raise InputError(f"QA threshold {name} cannot be empty")
    try:
        if isinstance(default, bool):
            raise TypeError
        if isinstance(default, str):
            return str(value)
        if name == "loudness_target_lufs":
            from sonic_model.loudness import parse_loudness_target

            return parse_loudness_target(value)
        if isinstance(default, int) or name in ("expected_width", "expected_height"):
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        number = float(value)
        if not math.isfinite(number):
            raise ValueError
        return number
    except (TypeError, ValueError):
        kind = "a whole number" if isinstance(default, int) else "a number" if not isinstance(default, str) else "text"
        raise InputError(f"QA threshold {name} must be {kind}, got {value!r}") from None
