"""The sync study's human-speech rows: which LibriVox readings each presenter says, and the sounds swapped in.

Used by `benchmarks/sync_study.py`. The five sentences of tests/fixtures/human_speech (3.0-7.1 s)
are said by every presenter alone (25 renders) and read one after another, 2-5 of them in a
drawn order (5 more per presenter, ~6-25 s). A swapped sound for a human render is either
- another human reading of the same length: the sentences in another order, looped and cut, with
  no sentence within 1 s of where the render says it (a same sentence at the same moment would be
  the render's own sound, not another row's), or
- an espeak-ng cut of the same length in a drawn language;
and every espeak-ng render also gets a human reading of its length swapped in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sync_study_media as media

# Sentences per reading, one reading each, per presenter.
CONCAT_SIZES = (2, 3, 4, 5, 3)
QUICK_SENTENCES = ("0870", "0920")
# A shared sentence closer than this to its own place would make a swap partly the render's own sound.
MIN_MISPLACEMENT_S = 1.0


def plan_human(first_index: int, *, quick: bool = False) -> list[media.Clip]:
    """Every sentence on every presenter, then readings of 2-5 sentences (quick: 2 sentences, 1 reading)."""
    clips: list[media.Clip] = []
    singles = QUICK_SENTENCES if quick else media.HUMAN_SENTENCES
    for presenter in media.PRESENTERS:
        for sentence in singles:
            clips.append(_clip(first_index + len(clips), presenter, (sentence,)))
    for p, presenter in enumerate(media.PRESENTERS):
        rng = np.random.default_rng(2300 + p)
        for size in CONCAT_SIZES[: 1 if quick else None]:
            order = tuple(str(s) for s in rng.permutation(media.HUMAN_SENTENCES)[:size])
            clips.append(_clip(first_index + len(clips), presenter, order))
    return clips


def _clip(index: int, presenter: str, sentences: tuple[str, ...]) -> media.Clip:
    seconds = round(sum(len(media.human_sentence(s)) for s in sentences) / media.RATE, 3)
    return media.Clip(index, presenter, "en", seconds, 1000 + index, speech="human", sentences=sentences)


def _placed(order: list[str]) -> tuple[list[tuple[str, float]], float]:
    """(sentence, start s) for each sentence of `order` read one after another, and the length."""
    placed, t = [], 0.0
    for sentence in order:
        placed.append((sentence, t))
        t += len(media.human_sentence(sentence)) / media.RATE
    return placed, t


def other_human_audio(clip: media.Clip, rng: np.random.Generator) -> np.ndarray:
    """Another human reading as long as `clip`'s: the sentences reordered, none near its own place."""
    own, _ = _placed(list(clip.sentences))
    length = int(round(clip.seconds * media.RATE))
    for _ in range(500):
        order: list[str] = []
        while _placed(order)[1] < 2 * clip.seconds + 8.0:
            order += [str(s) for s in rng.permutation(media.HUMAN_SENTENCES)]
        placed, total = _placed(order)
        start = float(rng.uniform(0.0, total - clip.seconds))
        near = any(
            sentence == mine and abs(at - start - mine_at) < MIN_MISPLACEMENT_S
            for sentence, at in placed
            for mine, mine_at in own
        )
        if not near:
            audio = media.human_audio(tuple(order))
            first = int(round(start * media.RATE))
            return audio[first : first + length]
    raise RuntimeError(f"no other human reading found for clip {clip.index} {clip.sentences}")


def human_cut(seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A human reading of `seconds` (the five sentences looped) cut from a drawn start, for an espeak render."""
    reading = media.human_audio(media.HUMAN_SENTENCES * (int(seconds // 24) + 2))
    return media.cut_clip(reading, seconds, rng)


def espeak_cut(seconds: float, rng: np.random.Generator, cache: Path) -> np.ndarray:
    """An espeak-ng cut of `seconds` in a drawn language, for a human render."""
    language = list(media.LANGUAGES)[int(rng.integers(len(media.LANGUAGES)))]
    return media.cut_clip(media.passage(language, cache), seconds, rng)
