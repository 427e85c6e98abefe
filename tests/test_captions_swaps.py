"""The swap check: a row's audio measured against the scripts of its item's other rows
(sonic_model/captions/swaps.py, tasks/siblings.py), on real eSpeak NG and LibriVox speech."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from manifests.schema import ManifestRow
from sonic_model.audio import load_audio, speech_segments
from sonic_model.captions import make_captions
from sonic_model.captions.swaps import CLEARLY_SPOKEN, Sibling, SwapCheck, find_swap, same_script
from tasks.qa import make_row_captions
from tasks.siblings import siblings_by_row

HUMAN = Path(__file__).parent / "fixtures" / "human_speech"
# One lesson's second half in French and in Greek (benchmarks/caption_alignment.py): the French
# script on the Greek audio scored 1.07 there, a pass, by its cognates ("μάθημα", "άσκηση").
FR = "Chaque leçon se termine par un exercice. Vous pouvez arrêter la vidéo à tout moment."
EL = "Κάθε μάθημα τελειώνει με μια άσκηση. Μπορείτε να σταματήσετε το βίντεο οποτεδήποτε."
SCRIPT_0870 = (
    "And Mister John Dashwood had then leisure to consider how much there might be prudently in his "
    "power to do for them."
)


@pytest.fixture(scope="module")
def greek_audio(tmp_path_factory):
    path = tmp_path_factory.mktemp("swaps") / "el.wav"
    subprocess.run(["espeak-ng", "-v", "el+f2", "-s", "145", "-w", str(path), EL], check=True)
    return load_audio(path)


def test_a_row_holding_its_sibling_s_audio_fails_naming_that_row(greek_audio) -> None:
    siblings = [Sibling("lesson-2-el", "el", EL), Sibling("lesson-2-de", "de", "Jede Lektion endet mit einer Übung.")]
    captions, failures, figures = make_row_captions({"script_text": FR}, "fr", greek_audio, siblings=siblings)
    assert captions is not None and figures["captions_swapped_with"] == "lesson-2-el", (failures, figures)
    (reason,) = [failure for failure in failures if "the audio speaks" in failure]
    assert reason.startswith("captions: the audio speaks the script of row 'lesson-2-el' better than this row's own")
    assert figures["captions_script_match"] >= 1.0  # the figure alone passed it
    # The Greek row itself, with its own audio, is not a swap of the French one.
    _, failures, figures = make_row_captions(
        {"script_text": EL}, "el", greek_audio, siblings=[Sibling("lesson-2-fr", "fr", FR)]
    )
    assert failures == [] and "captions_swapped_with" not in figures
    assert figures["captions_siblings_measured"] == 0  # its own script is clearly spoken (a gap of 2.3)


def test_a_human_reader_s_right_script_beats_its_siblings_and_a_swap_is_named() -> None:
    # A voice far from eSpeak NG's: the row's own gap is under CLEARLY_SPOKEN, so siblings are measured.
    clip = load_audio(HUMAN / "librivox_sense_0870.flac")
    segments = speech_segments(clip)
    other = (HUMAN / "librivox_sense_0920.txt").read_text()
    right = make_captions(SCRIPT_0870, "en", clip.samples, segments)
    assert right.cost_gap < CLEARLY_SPOKEN
    siblings = [Sibling("0920", "en", other), Sibling("0870-de", "de", "Und Herr John Dashwood hatte dann Zeit.")]
    assert find_swap(SCRIPT_0870, "en", right.cost_gap, siblings, clip.samples, segments, 1.0) == SwapCheck(2, None)
    # The same script for another row in another variant ("Mr.", tagged en-US: a voice nearer this
    # reader's, a gap of 1.35 against 1.15) is the same words, not a swap.
    same = Sibling("0870-us", "en-US", SCRIPT_0870.replace("Mister", "Mr."))
    assert find_swap(SCRIPT_0870, "en", right.cost_gap, [same], clip.samples, segments, 1.0) == SwapCheck(0, None)
    wrong = make_captions(other, "en", clip.samples, segments)
    check = find_swap(
        other, "en", wrong.cost_gap, [Sibling("0870", "en", SCRIPT_0870), same], clip.samples, segments, 1.0
    )
    swap = check.swap
    # Both siblings hold the words this audio speaks; the en-US one's voice is nearer the reader's.
    assert check.measured == 2 and swap is not None and swap.row_id == "0870-us"
    assert swap.cost_gap > swap.own_cost_gap + 0.1
    assert swap.script_match >= 1.0 and swap.own_cost_gap == pytest.approx(wrong.cost_gap)


def test_one_script_written_twice_is_not_another_row_s_script() -> None:
    british = "We analyse the colour of the organisation's centre, then travel to the theatre and the catalogue."
    american = "We analyze the color of the organization's center, then travel to the theater and the catalog."
    assert same_script(british, american) and same_script(SCRIPT_0870, SCRIPT_0870.replace("Mister", "Mr."))
    spanish = "El curso empieza con una breve historia. Luego vemos las herramientas que usarás."
    portuguese = "O curso começa com uma breve história. Depois vemos as ferramentas que você vai usar."
    assert not same_script(spanish, portuguese) and not same_script(FR, EL)


def test_siblings_are_the_other_rows_of_an_item_with_a_script() -> None:
    def row(row_id, language, item_id, script="Hello there.", collection="course"):
        return ManifestRow(row_id, "p.jpg", "a.wav", language, "release/1", collection=collection, item_id=item_id,
                           script_text=script)  # fmt: skip

    rows = [
        row("l1-en", "en", "lesson-1"),
        row("l1-de", "de", "lesson-1", "Hallo."),
        row("l1-fr", "fr", "lesson-1", None),  # no script: nothing to measure
        row("l2-en", "en", "lesson-2"),
        row("other-l1-en", "en", "lesson-1", collection="other course"),
        row("loose", "en", None),
    ]
    siblings = siblings_by_row(rows)
    assert siblings == {
        "l1-en": (Sibling("l1-de", "de", "Hallo."),),
        "l1-de": (Sibling("l1-en", "en", "Hello there."),),
    }
