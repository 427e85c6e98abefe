"""Captions on human speech: a LibriVox sentence (tests/fixtures/human_speech/) against pocketsphinx's
forced word alignment, and its script-vs-audio figure with the right and a wrong transcript."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonic_model.audio import AudioClip, load_audio, speech_segments
from sonic_model.captions import check_captions, make_captions
from sonic_model.captions.align import align_script

HUMAN = Path(__file__).parent / "fixtures" / "human_speech"
# The transcript as a course author would write it; its words are the fixture's transcript's.
SCRIPT_0870 = (
    "And Mister John Dashwood had then leisure to consider how much there might be prudently in his "
    "power to do for them."
)


@pytest.fixture(scope="module")
def sentence_0870() -> tuple[AudioClip, list[tuple[str, float]]]:
    clip = load_audio(HUMAN / "librivox_sense_0870.flac")
    aligned = json.loads((HUMAN / "librivox_sense_0870.words.json").read_text())
    words = [(w["t"].split("(")[0], w["b"]) for w in aligned["w"] if w["t"] != "<sil>"]
    return clip, words


def test_word_starts_within_200_ms_of_pocketsphinx(sentence_0870) -> None:
    clip, words = sentence_0870
    alignment = align_script(SCRIPT_0870, "en", clip.samples, speech_segments(clip))
    assert [t.token.text.strip(".").lower() for t in alignment.tokens] == [word for word, _ in words]
    errors = np.array([abs(t.start - start) for t, (_, start) in zip(alignment.tokens, words, strict=True)])
    late = {t.token.text: round(e, 3) for t, e in zip(alignment.tokens, errors, strict=True) if e > 0.2}
    assert not late, f"word starts over 200 ms from pocketsphinx's: {late}"
    assert np.median(errors) <= 0.08, np.median(errors)


def test_right_transcript_passes_qa_and_another_fails_naming_the_figure(sentence_0870) -> None:
    clip, _ = sentence_0870
    segments = speech_segments(clip)
    right = make_captions(SCRIPT_0870, "en", clip.samples, segments)
    assert check_captions(right) == [], right.cost_ratio
    other = (HUMAN / "librivox_sense_0920.txt").read_text()  # another sentence of the same reader
    wrong = make_captions(other, "en", clip.samples, segments)
    reasons = check_captions(wrong)
    assert any("script-vs-audio cost ratio" in reason for reason in reasons), (wrong.cost_ratio, reasons)
    assert right.cost_ratio < wrong.cost_ratio
