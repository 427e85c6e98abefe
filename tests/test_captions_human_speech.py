"""Captions on human speech: a LibriVox sentence (tests/fixtures/human_speech/) against pocketsphinx's
forced word alignment, and its script-vs-audio figure with the right and a wrong transcript."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sonic_model.audio import AudioClip, load_audio, speech_segments
from sonic_model.captions import check_captions, make_captions
from sonic_model.captions.align import _timed, align_script
from sonic_model.captions.text import tokenize

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
    assert check_captions(right) == [], right.script_match
    other = (HUMAN / "librivox_sense_0920.txt").read_text()  # another sentence of the same reader
    wrong = make_captions(other, "en", clip.samples, segments)
    reasons = check_captions(wrong)
    assert any("script-vs-audio match" in reason for reason in reasons), (wrong.script_match, reasons)
    assert right.script_match > wrong.script_match


def test_the_right_transcript_read_slower_still_passes(sentence_0870) -> None:
    # The reader says 0870 at 191 words a minute; at 0.8x (153, a common narration pace) its
    # match fell to 0.95, under the threshold, until the figure was measured on the script said
    # at the speaker's pace (align.py step 4). ffmpeg's atempo keeps the pitch.
    import ffmpeg

    from sonic_model.encode import ffmpeg_executable

    clip, _ = sentence_0870
    out, _ = (
        ffmpeg.input("pipe:", format="f32le", ar=16000, ac=1)
        .filter("atempo", 0.8)
        .output("pipe:", format="f32le", ar=16000, ac=1)
        .run(cmd=ffmpeg_executable(), input=clip.samples.astype(np.float32).tobytes(), capture_stdout=True, quiet=True)
    )
    slower = AudioClip(np.frombuffer(out, np.float32).copy())
    assert slower.duration_s == pytest.approx(clip.duration_s / 0.8, abs=0.05)
    captions = make_captions(SCRIPT_0870, "en", slower.samples, speech_segments(slower))
    assert check_captions(captions) == [], captions.script_match


def test_phrase_start_moves_past_a_pause_it_would_run_through() -> None:
    # "was;" ends a phrase; the warp put "he" at 5.1 s, before a pause (5.9-6.9 s) that the
    # synthesizer's shorter clause pause did not match: the phrase begins at 6.9 s. "might",
    # inside speech and not a phrase start, keeps its time.
    tokens = tokenize("than he was; he might")
    segments = [(0.3, 5.9), (6.9, 9.0)]
    timed = _timed(tokens, np.array([4.9, 5.0, 5.05, 5.1, 7.3]), segments)
    assert [round(t.start, 2) for t in timed] == [4.9, 5.0, 5.05, 6.9, 7.3]
    assert timed[2].end == 5.9  # "was;" ends where the pause begins
    # a word that is not a phrase's first stays where the warp put it
    plain = _timed(tokenize("than he was he might"), np.array([4.9, 5.0, 5.05, 5.1, 7.3]), segments)
    assert round(plain[3].start, 2) == 5.1


def test_phrase_end_carried_into_the_pause_goes_back_before_it() -> None:
    # The warp put "do for them." inside the pause after the sentence (10.4-11.7 s): they are the
    # sentence's end, not the next sentence's start, so they share 9.0-10.4 s with "to".
    tokens = tokenize("to do for them. Unless it")
    segments = [(0.3, 10.4), (11.7, 15.0)]
    timed = _timed(tokens, np.array([9.0, 10.5, 10.6, 10.7, 11.75, 12.0]), segments)
    starts = [t.start for t in timed]
    assert starts[0] == 9.0 and 9.0 < starts[1] < starts[2] < starts[3] < 10.4, starts
    assert timed[3].end == 10.4  # "them." ends where the pause begins
    assert starts[4] == 11.7 and starts[5] == 12.0  # the next sentence starts where speech resumes


# The sonnet as printed (capitals, punctuation): the script a course author would give.
SONNET_LINES = (HUMAN / "librivox_sonnet_001.lines.txt").read_text(encoding="utf-8").splitlines()


def test_a_second_reader_verse_read_slowly_by_a_woman_is_timed_within_the_targets() -> None:
    # A woman's voice (~190 Hz against the Austen reader's ~105), verse with a pause at line ends,
    # in an MP3: the timing targets hold for her too (benchmarks/caption_human_speech.py).
    clip = load_audio(HUMAN / "librivox_sonnet_001.mp3")
    aligned = json.loads((HUMAN / "librivox_sonnet_001.words.json").read_text())
    words = [(w["t"].split("(")[0], w["b"]) for w in aligned["w"] if w["t"] != "<sil>"]
    alignment = align_script(" ".join(SONNET_LINES), "en", clip.samples, speech_segments(clip))
    assert [t.token.text.strip(".,:").lower() for t in alignment.tokens] == [word for word, _ in words]
    errors = np.array([abs(t.start - start) for t, (_, start) in zip(alignment.tokens, words, strict=True)])
    median, p95 = np.median(errors), np.percentile(errors, 95)
    assert median <= 0.08 and p95 <= 0.2, (median, p95)
    line_starts = np.cumsum([0] + [len(line.split()) for line in SONNET_LINES[:-1]])
    assert np.median(errors[line_starts]) <= 0.08, np.round(errors[line_starts], 3)
    assert errors[line_starts].max() <= 0.4, np.round(errors[line_starts], 3)


@pytest.fixture(scope="module")
def sonnet_couplets() -> list[tuple[str, AudioClip]]:
    """The first three couplets: the recording cut halfway through the pause after each."""
    clip = load_audio(HUMAN / "librivox_sonnet_001.mp3")
    aligned = json.loads((HUMAN / "librivox_sonnet_001.words.json").read_text())
    words = [w for w in aligned["w"] if w["t"] != "<sil>"]
    couplets, begin, first = [], 0, 0
    for n in range(3):
        script = " ".join(SONNET_LINES[2 * n : 2 * n + 2])
        first += len(script.split())
        end = (words[first - 1]["b"] + words[first - 1]["d"] + words[first]["b"]) / 2
        couplets.append((script, AudioClip(clip.samples[int(begin * 16000) : int(end * 16000)])))
        begin = end
    return couplets


def test_a_woman_reading_verse_passes_with_her_script_and_fails_with_another(sonnet_couplets) -> None:
    # Her right scripts' cost gap is 0.64-0.91, under the 1.0 every row must reach, and under what
    # wrong scripts reach on eSpeak NG speech: every row of hers failed QA. Measured against its
    # own words in shuffled orders (align.py step 5) her script matches; another couplet does not.
    (script, clip), (other, _), (third, _) = sonnet_couplets
    segments = speech_segments(clip)
    right = make_captions(script, "en", clip.samples, segments)
    assert check_captions(right) == [], right.script_match
    for wrong_script in (other, third):
        wrong = make_captions(wrong_script, "en", clip.samples, segments)
        reasons = check_captions(wrong)
        assert any("script-vs-audio match" in reason for reason in reasons), (wrong.script_match, reasons)
