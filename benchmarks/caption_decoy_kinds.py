"""Can a decoy made from a wrong script tell it from the right one? (issue 24, sixth session)

A wrong script of the row's own language (another passage, the other half of a lesson) can pass
the script-vs-audio figure (sonic_model/captions/align.py) with a cost gap of 1.0-1.3, where
decoys are not measured. This study measures, for every case of benchmarks/caption_alignment.py's
sets (eSpeak NG speech; the Austen and sonnet readers, as read and at other paces), the script's
cost gap over the mean gap of decoys of five kinds, each made from the script alone:

- shuffled: its words in a random order (align.py's own decoys);
- within sentences: its words shuffled inside each sentence (sentence ends stay);
- around punctuation: its bare words shuffled, each punctuation mark left in its place;
- sentences rotated: the script cut after a sentence end and the two parts swapped;
- rotated at quarters: cut at a quarter, half and three quarters of its words.

It prints, for each kind, the lowest ratio of a correct reading that passes the figure today and
how many of the wrong scripts that pass it today score under that: a decoy kind that tells them
apart would put every wrong script under every correct one.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python -u benchmarks/caption_decoy_kinds.py

About 15 minutes on one core (eight decoys of each kind a case: 1,200 cases).
"""

from __future__ import annotations

import itertools
import re
import sys
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import caption_alignment  # noqa: E402
import caption_human_speech  # noqa: E402

from sonic_model.audio import AudioClip, speech_segments
from sonic_model.captions import align
from sonic_model.captions.checks import MIN_SCRIPT_MATCH
from sonic_model.captions.text import Token

COUNT = 8  # decoys of each kind
_TRAILING = re.compile(r"^(.*?)([\W_]*)$", re.S)


def _join(tokens: list[Token], texts: list[str]) -> str:
    return (" " if any(token.spaced for token in tokens) else "").join(texts)


def _distinct(tokens: list[Token], make) -> list[str]:
    """Up to `COUNT` decoys from `make(rng)` other than the script itself."""
    own = _join(tokens, [token.text for token in tokens])
    rng = np.random.default_rng(zlib.crc32(own.encode("utf-8")))
    found: list[str] = []
    for _ in range(COUNT * 10):
        decoy = make(rng)
        if decoy != own and decoy not in found:
            found.append(decoy)
        if len(found) == COUNT:
            break
    return found


def within_sentences(tokens: list[Token]) -> list[str]:
    sentences, current = [], []
    for token in tokens:
        current.append(token)
        if token.ends_sentence:
            sentences.append(current)
            current = []
    sentences += [current] if current else []

    def make(rng):
        return _join(tokens, [part[i].text for part in sentences for i in rng.permutation(len(part))])

    return _distinct(tokens, make)


def around_punctuation(tokens: list[Token]) -> list[str]:
    slots = [index for index, token in enumerate(tokens) if not token.is_punctuation]
    split = [_TRAILING.match(tokens[index].text) for index in slots]
    cores = [match.group(1) or tokens[index].text for match, index in zip(split, slots, strict=True)]
    marks = [match.group(2) if match.group(1) else "" for match in split]

    def make(rng):
        texts = [token.text for token in tokens]
        for slot, (index, pick) in enumerate(zip(slots, rng.permutation(len(slots)), strict=True)):
            texts[index] = cores[pick] + marks[slot]
        return _join(tokens, texts)

    return _distinct(tokens, make)


def rotations(tokens: list[Token], cuts: list[int]) -> list[str]:
    return [_join(tokens, [token.text for token in tokens[cut:] + tokens[:cut]]) for cut in cuts[:COUNT]]


def decoys_of(tokens: list[Token], text: str) -> dict[str, list[str]]:
    n = len(tokens)
    sentence_cuts = [index + 1 for index, token in enumerate(tokens[:-1]) if token.ends_sentence]
    quarters = sorted({max(1, min(n - 1, round(n * share))) for share in (0.25, 0.5, 0.75)}) if n >= 3 else []
    return {
        "shuffled": align._shuffled_scripts(tokens, text, COUNT),
        "within sentences": within_sentences(tokens),
        "around punctuation": around_punctuation(tokens),
        "sentences rotated": rotations(tokens, sentence_cuts),
        "rotated at quarters": rotations(tokens, quarters),
    }


_DECOY_GAPS: dict[str, list[float]] = {}


def _measure_decoys(gap, tokens, text, voice, pace, spoken):
    """Stands in for align._decoy_ratio: records every kind's decoy gaps, leaves the figure as the
    gap (every case is measured, whatever its gap; the verdict of today is computed apart)."""
    for kind, decoys in decoys_of(tokens, text).items():
        gaps = []
        for decoy in decoys:
            value = align._cost_gap(align._VoicedPart.of(*align._synthetic(decoy, voice, pace)[2]), spoken)
            gaps.append(np.nan if value is None else value)
        _DECOY_GAPS[kind] = gaps
    return None


def cases():
    """(correct?, script, language, samples, speech segments) of every case of the three sets,
    drawn as caption_alignment.py and caption_human_speech.py draw them."""
    items = caption_alignment.espeak_items()
    for language, script, samples, _ in items:
        yield True, script, language, samples, None
    for a, b in itertools.permutations(range(len(items)), 2):
        yield False, items[a][1], items[a][0], items[b][2], None
        if items[a][0] != items[b][0]:
            yield False, items[a][1], items[b][0], items[b][2], None
    others = {language: s for language, s in caption_alignment.SENTENCES.items() if language != "en"}
    for reader in caption_human_speech.READERS:
        read = caption_human_speech.build_cases(reader=reader)
        segments = {case.name: speech_segments(AudioClip(case.samples)) for case in read}
        passages, languages = caption_human_speech.swap_picks(read, np.random.default_rng(1), 12, others)
        for case in read:
            yield True, case.script, "en", case.samples, segments[case.name]
        for case, picked in zip(read, passages, strict=True):
            for other in picked:
                yield False, case.script, "en", other.samples, segments[other.name]
        for case, picked in zip(read, languages, strict=True):
            for other in picked:
                yield False, " ".join(others[other][: len(case.sentences)]), other, case.samples, segments[case.name]
        sentences = (
            caption_human_speech.load_couplets() if reader == "sonnet" else caption_human_speech.load_sentences()
        )
        for _, (samples, script) in caption_human_speech.other_paces(read, sentences):
            yield True, script, "en", samples, speech_segments(AudioClip(samples))


def _today(gap: float, shuffled: list[float]) -> float:
    """The figure as align.py makes it from these decoys' gaps (the gap alone from DECOYS_BELOW)."""
    ratio = align.decoy_ratio(gap, shuffled) if gap < align.DECOYS_BELOW else None
    return align.script_match_of(gap, ratio)


def main() -> int:
    caption_human_speech.warn_unless_one_thread()
    align.DECOYS_BELOW, real_decoys_below = np.inf, align.DECOYS_BELOW
    align._decoy_ratio = _measure_decoys
    results = []  # (correct?, gap, {kind: decoy gaps})
    for correct, script, language, samples, segments in cases():
        _DECOY_GAPS.clear()
        alignment = align.align_script(script, language, samples, segments)
        if alignment.cost_gap is not None and _DECOY_GAPS:
            results.append((correct, alignment.cost_gap, dict(_DECOY_GAPS)))
    align.DECOYS_BELOW = real_decoys_below
    passing = [
        (correct, gap, gaps) for correct, gap, gaps in results if _today(gap, gaps["shuffled"]) >= MIN_SCRIPT_MATCH
    ]
    print(
        f"{len(results)} cases measured against decoys ({sum(c for c, _, _ in results)} correct); passing the figure "
        f"today: {sum(c for c, _, _ in passing)} correct, {sum(not c for c, _, _ in passing)} wrong"
    )
    for kind in passing[0][2]:
        ratios = {True: [], False: []}
        for correct, gap, gaps in passing:
            measured = [value for value in gaps[kind] if np.isfinite(value)]
            if measured:
                ratios[correct].append(gap / max(float(np.mean(measured)), align.MIN_DECOY_GAP))
        right, wrong = np.array(ratios[True]), np.array(ratios[False])
        print(
            f"  {kind}: correct lowest {right.min():.2f} (of {len(right)}); wrong {wrong.min():.2f}-{wrong.max():.2f} "
            f"(of {len(wrong)}), under the lowest correct: {(wrong < right.min()).sum()}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
