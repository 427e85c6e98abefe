"""Captions are timed on the sound as published: when lip-sync calibration (or `av_offset_ms`)
re-times the sound, the cues move with it (`tasks.qa.as_published`), in a render's QA and in a
captions-only update alike (both call `tasks.qa.make_row_captions`)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from sonic_model.audio import load_audio
from sonic_model.captions import parse_captions
from tasks.qa import as_published, make_row_captions
from tests.test_captions import EN


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    wav = tmp_path_factory.mktemp("timing") / "en.wav"
    text = " ".join(EN)
    subprocess.run(["espeak-ng", "-v", "en+f2", "-s", "145", "-w", str(wav), text], check=True)
    return load_audio(wav), {"script_text": text}


def starts(record: dict) -> np.ndarray:
    return np.array([cue.start for cue in parse_captions(record["vtt"])])


@pytest.mark.parametrize("delay_ms", [120.0, -80.0])
def test_cues_follow_the_re_timed_sound(speech, delay_ms: float) -> None:
    audio, source = speech
    plain, plain_failures, _ = make_row_captions(source, "en", audio)
    moved, moved_failures, _ = make_row_captions(source, "en", audio, delay_ms)
    assert plain_failures == moved_failures == []
    assert len(starts(plain)) == len(starts(moved))
    # (a cue starting within the first |delay| of the file when the sound is advanced starts at 0)
    inside = starts(plain) > abs(delay_ms) / 1000.0
    shift = (starts(moved) - starts(plain))[inside]
    assert inside.sum() >= 2 and np.all(np.abs(shift - delay_ms / 1000.0) <= 0.025), shift  # one 20 ms MFCC frame


def test_the_published_sound_keeps_its_length(speech) -> None:
    audio, _ = speech
    for delay_ms in (250.0, -250.0):
        moved = as_published(audio, delay_ms)
        assert len(moved.samples) == len(audio.samples) and moved.samples.dtype == np.float32
    later = as_published(audio, 250.0).samples
    assert not later[:4000].any() and np.array_equal(later[4000:], audio.samples[:-4000])
    assert as_published(audio, 0.0) is audio


def test_the_run_s_script_match_threshold_decides_the_row(speech) -> None:
    # `--qa-threshold min_script_match=...` reaches the caption check (a render's QA and a
    # captions-only update both pass the run's value here); the reason names the run's figure.
    audio, source = speech
    record, failures, figures = make_row_captions(source, "en", audio)
    assert failures == [] and figures["captions_script_match"] > 1.0
    _, failures, _ = make_row_captions(source, "en", audio, min_script_match=9.0)
    assert len(failures) == 1 and "under 9.00" in failures[0], failures
    # another script: its match fails at the default, and not with the threshold lowered under it
    other = {"script_text": "Ein ganz anderer Satz auf Deutsch, über etwas anderes."}
    _, failures, figures = make_row_captions(other, "de", audio)
    assert any("script-vs-audio match" in failure for failure in failures), failures
    lowered = figures["captions_script_match"] - 0.01
    _, failures, _ = make_row_captions(other, "de", audio, min_script_match=lowered)
    assert not any("script-vs-audio" in failure for failure in failures), failures
