"""Is this row's audio (or script) another row's? Its item's other rows and its neighbours, measured on its audio.

The script-vs-audio figure compares one script with one audio, and a voice unlike eSpeak NG's
leaves little room between a right and a wrong script: a translation with cognates, or half of
the same paragraph, can pass it (benchmarks/caption_alignment.py). But the mistake a catalog
makes most is a swap among the rows of one item (its languages): the audio, or the script, of
another row of the same item; and within one language, the audio of the row before or after
(a file list one off). Those rows' scripts are in the manifest, and measured on this row's audio
they answer the question directly: on one audio the voice is the same for every script, so the
script that is spoken has the highest cost gap (align.py) by a clear margin. The figure cannot
tell another passage of the same language by itself: every decoy made from the wrong script
(its words shuffled, within sentences, around its punctuation, its sentences rotated) scored
below it as it scores below the right one (benchmarks/RESULTS.md, sixth session).

1. Each sibling's script (the item's other rows, and the `NEIGHBOURS` rows of its language
   before and after it) is measured on this row's audio, read in its own language (this row
   holds that row's audio) and, where that is another, in this row's (the two rows swapped
   scripts: that row holds the script this audio speaks, in this audio's language): step 4's cost gap, at
   the speaker's pace, no timing and no decoys. A sibling with the row's own script (`SAME_WORDS`
   of its words, or `SAME_CHARACTERS` of its letters: the same script for another presenter, or
   in another variant, "Mr." for "Mister" or "color" for "colour" tagged en-US) is not measured:
   its gap differs from the row's by how near its voice is (the LibriVox reader's right script
   scored 1.15 tagged en, 1.35 tagged en-US).
2. The best sibling is a swap only if its gap beats the row's own by `MARGIN`, and its full
   figure (decoys included) passes the script-match threshold: the audio speaks that row's script
   as plainly as a right script is spoken.

Where the row's own gap is `CLEARLY_SPOKEN` or more, no sibling is measured: no wrong script in
the studies scored over 1.34, and right scripts on voices near eSpeak NG's score 1.4-2.6.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np

from sonic_model.captions.align import align_script, script_cost_gap, spoken_part
from sonic_model.captions.languages import primary_language
from sonic_model.captions.text import normalize_script, tokenize

# How much more the sibling's cost gap must be than the row's own. On its own audio the right
# script's gap beat every other language's by 0.65 or more on eSpeak NG speech, 0.34 for the man
# reading prose (0.13 at other paces), 0.04 for the woman reading verse, whose voice is farthest
# from eSpeak NG's; slowed to 0.8x, one other language's script scored 0.095 over hers (each read
# in its own language; benchmarks/caption_alignment.py finds no correct reading failed).
MARGIN = 0.1
CLEARLY_SPOKEN = 1.6
# An item with more rows than this has its first ones measured (cost: a sibling in another
# language is two syntheses and two warps, about a third of the row's own alignment; one in the
# row's language, one of each). `NEIGHBOURS`: how many rows of the row's language are taken from
# before it, and as many from after it, in the manifest (tasks/siblings.py).
MAX_SIBLINGS = 12
NEIGHBOURS = 1
# Scripts whose words (lower case, punctuation left out) match in this share, or their characters
# in this one, are the same script. British and American spellings of one English sentence share
# 61% of its words and 94% of its characters; a Spanish and a Portuguese translation 29% and 76%.
SAME_WORDS = 0.8
SAME_CHARACTERS = 0.9


@dataclass(frozen=True)
class Sibling:
    """Another row of the same item, or a neighbour in the row's language: its id, language and script."""

    row_id: str
    language: str
    script: str


@dataclass(frozen=True)
class Swap:
    """A sibling whose script this audio speaks better than the row's own."""

    row_id: str
    language: str  # the language the sibling's script was read in (its own, or this row's)
    cost_gap: float  # the sibling's script on this audio
    own_cost_gap: float  # the row's own script on it
    script_match: float  # the sibling's full figure on this audio


@dataclass(frozen=True)
class SwapCheck:
    measured: int  # siblings whose scripts were measured on the audio
    swap: Swap | None  # the one the audio speaks instead of the row's own, if any


def find_swap(
    own_script: str,
    language: str,
    own_cost_gap: float | None,
    siblings: list[Sibling],
    samples: np.ndarray,
    speech_segments: list[tuple[float, float]] | None,
    min_script_match: float,
) -> SwapCheck:
    """The sibling whose script `samples` speak, where it is not the row's own (see above); none
    if none is, or the row's own script is clearly spoken, or it has no cost gap to compare."""
    if own_cost_gap is None or own_cost_gap >= CLEARLY_SPOKEN:
        return SwapCheck(0, None)
    siblings = [sibling for sibling in siblings if not same_script(sibling.script, own_script)]
    if not siblings:
        return SwapCheck(0, None)
    spoken, _ = spoken_part(samples, speech_segments)
    best, best_gap, measured = None, -np.inf, siblings
    for sibling in measured:  # step 1
        readings = [sibling.language]
        if primary_language(sibling.language) != primary_language(language):
            readings.append(language)
        for reading in readings:
            gap = script_cost_gap(sibling.script, reading, spoken)
            if gap is not None and gap > best_gap:
                best, best_gap = (sibling, reading), gap
    if best is None or best_gap - own_cost_gap <= MARGIN:  # step 2
        return SwapCheck(len(measured), None)
    (sibling, reading), gap = best, float(best_gap)
    match = align_script(sibling.script, reading, samples, speech_segments).script_match
    if match is None or match < min_script_match:
        return SwapCheck(len(measured), None)
    return SwapCheck(len(measured), Swap(sibling.row_id, reading, gap, float(own_cost_gap), float(match)))


def _words(script: str) -> list[str]:
    words = [
        token.text.lower().strip(".,;:!?\"'()[]«»“”‘’¿¡、。，；：！？") for token in tokenize(normalize_script(script))
    ]
    return [word for word in words if word]


def same_script(a: str, b: str) -> bool:
    """Whether two scripts are one script written twice (see `SAME_WORDS`)."""
    if _alike(_words(a), _words(b), SAME_WORDS):
        return True
    return _alike(normalize_script(a).lower(), normalize_script(b).lower(), SAME_CHARACTERS)


def _alike(a, b, share: float) -> bool:
    """Whether sequences `a` and `b` match in `share` of their items (difflib's ratio). The ratio's
    upper bounds come first: they take linear time where the ratio is quadratic (two 15,000-character
    translations took 17 s), and they already tell a translation from its own script."""
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return matcher.real_quick_ratio() >= share and matcher.quick_ratio() >= share and matcher.ratio() >= share


def swap_reason(swap: Swap) -> str:
    """The QA failure that names the row whose script the audio speaks."""
    return (
        f"captions: the audio speaks the script of row {swap.row_id!r} better than this row's own: "
        f"cost gap {swap.cost_gap:.2f} against {swap.own_cost_gap:.2f}, its script-vs-audio match "
        f"{swap.script_match:.2f}; the audio or the script was swapped between the two rows"
    )
