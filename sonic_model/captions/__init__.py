"""Captions from a row's script: alignment on CPU (eSpeak NG + MFCC DTW), cues by caption rules,
WebVTT/SubRip files, and the QA checks on them. Pure: no Prefect, no storage.

`make_captions` is the one entry point the pipeline uses; the modules stay usable on their own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sonic_model.captions.align import Alignment, align_script
from sonic_model.captions.checks import MIN_SCRIPT_MATCH, check_coverage, check_cue_rules, check_script_match
from sonic_model.captions.cues import CaptionRules, build_cues, rules_for
from sonic_model.captions.formats import Cue, check_cues, parse_captions, vtt_style_blocks, write_srt, write_vtt

__all__ = [
    "Captions",
    "Cue",
    "check_captions",
    "captions_from",
    "check_cues",
    "make_captions",
    "parse_captions",
    "write_srt",
    "write_vtt",
]


@dataclass(frozen=True)
class Captions:
    cues: list[Cue]
    language: str
    method: str  # "espeak-dtw", "proportional" or "given" (a captions_uri file)
    script_match: float | None  # align.py; None: nothing to compare (proportional or given)
    rules: CaptionRules
    speech_segments: list[tuple[float, float]]
    style_blocks: tuple[str, ...] = ()  # a given WebVTT file's STYLE and REGION blocks
    cost_gap: float | None = None  # the script's cost gap on the audio (align.py; swaps.py compares it)

    def vtt(self) -> str:
        return write_vtt(self.cues, self.language, self.style_blocks)

    def srt(self) -> str:
        return write_srt(self.cues)


def make_captions(
    script: str, language: str, samples: np.ndarray, speech_segments: list[tuple[float, float]] | None = None
) -> Captions:
    """Captions of 16 kHz mono `samples` from the script spoken in them."""
    alignment: Alignment = align_script(script, language, samples, speech_segments)
    rules = rules_for(alignment.tokens)
    cues = build_cues(alignment.tokens, rules)
    return Captions(
        cues, language, alignment.method, alignment.script_match, rules, alignment.speech_segments,
        cost_gap=alignment.cost_gap,
    )  # fmt: skip


def captions_from(
    script_text: str | None,
    captions_text: str | None,
    language: str,
    samples: np.ndarray,
    speech_segments: list[tuple[float, float]] | None = None,
) -> Captions:
    """A row's captions: a given file's cues as they are (`method="given"`), else cues aligned from
    the script; with a script, the alignment's match figure either way."""
    made = make_captions(script_text, language, samples, speech_segments) if script_text else None
    if not captions_text:
        if made is None:
            raise ValueError("captions need a script or a captions file")
        return made
    cues = parse_captions(captions_text)
    segments = made.speech_segments if made else (speech_segments or [])
    rules = made.rules if made else CaptionRules(max_line_chars=42)
    match, gap = (made.script_match, made.cost_gap) if made else (None, None)
    return Captions(cues, language, "given", match, rules, segments, vtt_style_blocks(captions_text), gap)


def check_captions(captions: Captions, min_script_match: float | None = None) -> list[str]:
    """QA reasons against the caption rules, the speech coverage and the script match ([] = passed)."""
    reasons = check_cue_rules(captions.cues, captions.rules) if captions.method != "given" else []
    reasons += check_coverage(captions.cues, captions.speech_segments, captions.rules.max_silence_s)
    threshold = MIN_SCRIPT_MATCH if min_script_match is None else min_script_match
    return reasons + check_script_match(captions.script_match, threshold)
