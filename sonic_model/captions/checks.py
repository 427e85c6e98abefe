"""QA of a row's captions: the caption rules on the cues, coverage of the speech, and the script match.

Each check returns reasons (strings naming the figure and the limit); no reason means it passed.
"""

from __future__ import annotations

from sonic_model.captions.cues import CaptionRules
from sonic_model.captions.formats import Cue
from sonic_model.captions.text import display_width

# Reading speed fails only this far over the guideline: captions must be verbatim (WCAG 1.2.2), so
# a fast speaker's cues can be somewhat over the figure meant for edited subtitles.
READING_SPEED_SLACK = 1.25
# Speech segments at least this long must be under a cue (issue 24).
MIN_COVERED_SPEECH_S = 0.5
# A speech segment counts as covered when cues cover this share of it (cue edges are word edges).
COVERED_SHARE = 0.8
# The script-vs-audio match (align.py: standard deviations by which the script's warp path beats
# the reversed synthetic speech's, said at the speaker's pace; or, where that is under 1, the same
# over its shuffled-word decoys', 1.45 counting as 1) under which the audio is not the script's.
# Set on eSpeak NG speech and two LibriVox readers (benchmarks/caption_alignment.py): no correct
# script of any of the three fails at the reader's pace, and 2 of 188 at other paces do (the
# woman reading verse, slowed to 0.7x and 0.8x); under 1.0: 95% of swapped scripts on eSpeak NG
# speech, 94-97% on human speech, 97.5-100% of other languages. A run may change it
# (QAThresholds.min_script_match).
# docs/captions.md.
MIN_SCRIPT_MATCH = 1.0


def check_cue_rules(cues: list[Cue], rules: CaptionRules) -> list[str]:
    reasons = []
    for number, cue in enumerate(cues, 1):
        longest = max(display_width(line) for line in cue.lines)
        if longest > rules.max_line_chars or len(cue.lines) > rules.max_lines:
            reasons.append(
                f"captions: cue {number} has {len(cue.lines)} line(s), the longest {longest} characters "
                f"(limit {rules.max_lines} x {rules.max_line_chars})"
            )
        speed = sum(display_width(line) for line in cue.lines) / max(cue.end - cue.start, 1e-3)
        if speed > rules.max_chars_per_s * READING_SPEED_SLACK:
            reasons.append(
                f"captions: cue {number} reading speed {speed:.1f} characters/s over "
                f"{rules.max_chars_per_s * READING_SPEED_SLACK:.1f}"
            )
    return reasons


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def check_coverage(
    cues: list[Cue], speech_segments: list[tuple[float, float]], max_silence_s: float = 1.0
) -> list[str]:
    """Every speech segment of >= 0.5 s under cues; no cue over more than `max_silence_s` of silence."""
    reasons = []
    spans = [(cue.start, cue.end) for cue in cues]
    for start, end in speech_segments:
        if end - start < MIN_COVERED_SPEECH_S:
            continue
        covered = sum(_overlap((start, end), span) for span in spans)
        if covered < COVERED_SHARE * (end - start):
            reasons.append(
                f"captions: speech at {start:.2f}-{end:.2f} s is {covered / (end - start):.0%} under cues "
                f"(at least {COVERED_SHARE:.0%})"
            )
    for number, cue in enumerate(cues, 1):
        silent = _longest_silence(cue, speech_segments)
        if silent > max_silence_s:
            reasons.append(
                f"captions: cue {number} stays up over {silent:.2f} s of silence (limit {max_silence_s:.1f} s)"
            )
    return reasons


def _longest_silence(cue: Cue, speech_segments: list[tuple[float, float]]) -> float:
    cursor, longest = cue.start, 0.0
    for start, end in speech_segments:
        if end <= cue.start:
            continue
        if start >= cue.end:
            break
        longest = max(longest, start - cursor)
        cursor = max(cursor, end)
    return max(longest, cue.end - cursor)


def check_script_match(script_match: float | None, min_match: float = MIN_SCRIPT_MATCH) -> list[str]:
    if script_match is None or script_match >= min_match:
        return []
    return [
        f"captions: script-vs-audio match {script_match:.2f} under {min_match:.2f}: the audio does not "
        "speak this script (another language or another row's audio?)"
    ]
