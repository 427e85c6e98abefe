"""The swap check: a row's audio measured against the scripts of its item's other rows and of its
neighbours in its language (sonic_model/captions/swaps.py, tasks/siblings.py), on real eSpeak NG
and LibriVox speech."""

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


def test_siblings_are_the_other_rows_of_an_item_and_the_neighbours_in_its_language() -> None:
    def row(row_id, language, item_id, script="Hello there.", collection="course"):
        return ManifestRow(row_id, "p.jpg", "a.wav", language, "release/1", collection=collection, item_id=item_id,
                           script_text=script)  # fmt: skip

    rows = [
        row("l1-en", "en", "lesson-1"),
        row("l1-de", "de", "lesson-1", "Hallo."),
        row("l1-fr", "fr", "lesson-1", None),  # no script: nothing to measure
        row("l2-en", "en-GB", "lesson-2", "Good morning."),
        row("other-l1-en", "en", "lesson-1", collection="other course"),  # alone in its collection
        row("loose", "en_US", None, "Goodbye."),  # no item: a neighbour all the same
        row("l3-en", "en", "lesson-3", "See you."),
    ]
    siblings = siblings_by_row(rows)
    en1, de1, en2 = (
        Sibling("l1-en", "en", "Hello there."),
        Sibling("l1-de", "de", "Hallo."),
        Sibling("l2-en", "en-GB", "Good morning."),
    )
    loose, en3 = Sibling("loose", "en_US", "Goodbye."), Sibling("l3-en", "en", "See you.")
    assert siblings == {
        "l1-en": (de1, en2),  # its item's rows, then the nearest row of its language after it (none before)
        "l1-de": (en1,),
        "l2-en": (en1, loose),  # a row before and a row after, in manifest order
        "loose": (en2, en3),
        "l3-en": (loose,),
    }


def test_neighbours_skip_the_row_s_own_item_and_stop_at_one_each_side() -> None:
    def row(row_id, item_id, language="fr"):
        return ManifestRow(row_id, "p.jpg", "a.wav", language, "release/1", collection="c", item_id=item_id,
                           script_text=f"Texte {row_id}.")  # fmt: skip

    # A second French row of item b (a re-recording) is its item's row, not a neighbour.
    rows = [row("a", "a"), row("b1", "b"), row("b2", "b"), row("c", "c"), row("d", "d")]
    found = {row_id: [sibling.row_id for sibling in siblings] for row_id, siblings in siblings_by_row(rows).items()}
    assert found == {"a": ["b1"], "b1": ["b2", "a", "c"], "b2": ["b1", "a", "c"], "c": ["b2", "d"], "d": ["c"]}


# Two lessons in German (benchmarks/caption_alignment.py): the second's script scores 1.26 on the
# first's audio, a pass by the figure alone (same language, same voice, sentences of one shape).
DE_1 = "Der Kurs beginnt mit einer kurzen Geschichte. Dann sehen wir uns die Werkzeuge an."
DE_2 = "Jede Lektion endet mit einer Übung. Sie können das Video jederzeit anhalten."


def test_a_row_holding_the_audio_of_the_row_before_it_fails_naming_that_row(tmp_path) -> None:
    path = tmp_path / "lesson-1-de.wav"
    subprocess.run(["espeak-ng", "-v", "de+f2", "-s", "145", "-w", str(path), DE_1], check=True)
    audio = load_audio(path)

    def row(row_id, item_id, language, script):
        return ManifestRow(row_id, "p.jpg", "a.wav", language, "release/1", collection="course", item_id=item_id,
                           script_text=script)  # fmt: skip

    rows = [row("lesson-1-de", "lesson-1", "de", DE_1), row("lesson-1-el", "lesson-1", "el", EL)]
    rows.append(row("lesson-2-de", "lesson-2", "de", DE_2))  # its audio file is lesson 1's: the list is one off
    siblings = siblings_by_row(rows)
    _, failures, figures = make_row_captions({"script_text": DE_2}, "de", audio, siblings=siblings["lesson-2-de"])
    assert figures["captions_script_match"] >= 1.0, figures  # the figure alone passes it
    assert figures["captions_swapped_with"] == "lesson-1-de", (failures, figures)
    (reason,) = [failure for failure in failures if "the audio speaks" in failure]
    assert "the script of row 'lesson-1-de' better than this row's own" in reason
    # Lesson 1 with its own audio: its script is clearly spoken, no neighbour is measured.
    _, failures, figures = make_row_captions({"script_text": DE_1}, "de", audio, siblings=siblings["lesson-1-de"])
    assert failures == [] and figures["captions_siblings_measured"] == 0
