"""Caption alignment study: phrase-start error, speed, and script-vs-audio mismatch detection.

Speech with known boundaries: each item is two sentences said by the espeak-ng command with
another voice variant (+f2) and speed (145 words/min) than the aligner's reference (default
voice, 175), joined with pauses of 0.4-0.9 s, with white noise 30 dB under
the speech. For each of the languages below, two items.

Figures:
- phrase-start error: every sentence start found by the aligner vs the truth (median, p95);
- speed: seconds of audio aligned per second of one core's time (with the eSpeak NG helper's);
- mismatch: every item's script against its own audio (good) and against every other item's audio,
  same language or not (swapped); the script-match threshold is set between the two;
- the swap check (sonic_model/captions/swaps.py): an item's rows are one half of the paragraph
  in every language, and a row's neighbour (tasks/siblings.py) the other half in its language;
  each swap among an item's rows (another row's audio, or two rows' scripts swapped) and each
  row holding its neighbour's audio: caught by the figure, by the check naming the right row, or
  either; correct rows it fails. Scripts the
  voice cannot read (Japanese with kanji) are timed proportionally and have no match figure; they
  are counted and left out of the mismatch figures.

    OPENBLAS_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python -u benchmarks/caption_alignment.py [--human-only]

Human speech (two LibriVox readers, pocketsphinx word starts) is measured by
caption_human_speech.py and printed after the espeak-ng figures, each reader separately.
"""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import caption_human_speech  # noqa: E402

from sonic_model.audio import load_audio
from sonic_model.captions import espeak, make_captions
from sonic_model.captions.checks import MIN_SCRIPT_MATCH
from sonic_model.captions.swaps import Sibling, find_swap

SENTENCES = {
    "en": [
        "The course starts with a short history.",
        "Then we look at the tools you will use.",
        "Each lesson ends with a small exercise.",
        "You can pause the video at any time.",
    ],
    "de": [
        "Der Kurs beginnt mit einer kurzen Geschichte.",
        "Dann sehen wir uns die Werkzeuge an.",
        "Jede Lektion endet mit einer Übung.",
        "Sie können das Video jederzeit anhalten.",
    ],
    "es": [
        "El curso empieza con una breve historia.",
        "Luego vemos las herramientas que usarás.",
        "Cada lección termina con un ejercicio.",
        "Puedes pausar el vídeo cuando quieras.",
    ],
    "fr": [
        "Le cours commence par une courte histoire.",
        "Ensuite nous regardons les outils.",
        "Chaque leçon se termine par un exercice.",
        "Vous pouvez arrêter la vidéo à tout moment.",
    ],
    "ru": [
        "Курс начинается с короткой истории.",
        "Затем мы посмотрим на инструменты.",
        "Каждый урок заканчивается упражнением.",
        "Вы можете остановить видео в любой момент.",
    ],
    "ar": [
        "تبدأ الدورة بتاريخ قصير.",
        "ثم ننظر إلى الأدوات التي ستستخدمها.",
        "ينتهي كل درس بتمرين صغير.",
        "يمكنك إيقاف الفيديو في أي وقت.",
    ],
    "zh": [
        "这门课程从一段简短的历史开始。",
        "然后我们来看看你将使用的工具。",
        "每一课都以一个小练习结束。",
        "你可以随时暂停视频。",
    ],
    "hi": [
        "पाठ्यक्रम एक छोटे इतिहास से शुरू होता है।",
        "फिर हम उन उपकरणों को देखते हैं।",
        "हर पाठ एक छोटे अभ्यास के साथ समाप्त होता है।",
        "आप किसी भी समय वीडियो रोक सकते हैं।",
    ],
    "el": [
        "Το μάθημα ξεκινά με μια σύντομη ιστορία.",
        "Μετά βλέπουμε τα εργαλεία που θα χρησιμοποιήσετε.",
        "Κάθε μάθημα τελειώνει με μια άσκηση.",
        "Μπορείτε να σταματήσετε το βίντεο οποτεδήποτε.",
    ],
    "ja": [
        "このコースは短い歴史から始まります。",
        "次に使う道具を見ていきます。",
        "各レッスンは小さな練習で終わります。",
        "いつでも動画を止めることができます。",
    ],
}


def speak(folder: Path, language: str, sentences: list[str], rng: np.random.Generator):
    parts, starts, at = [np.zeros(int(0.3 * 16000), np.float32)], [], 0.3
    for index, sentence in enumerate(sentences):
        wav = folder / f"{language}{index}.wav"
        voice = espeak.voice_for(language)  # the aligner's own choice (Mandarin: cmn-latn-pinyin)
        subprocess.run(["espeak-ng", "-v", f"{voice}+f2", "-s", "145", "-w", str(wav), sentence], check=True)
        samples = load_audio(wav).samples
        voiced = np.flatnonzero(np.abs(samples) > 0.01)
        samples = samples[voiced[0] : voiced[-1] + 1]
        pause = float(rng.uniform(0.4, 0.9))
        starts.append(at)
        parts += [samples, np.zeros(int(pause * 16000), np.float32)]
        at += len(samples) / 16000 + pause
    speech = np.concatenate(parts)
    # room noise 30 dB under the speech's RMS: pauses are not digital silence in a recording
    noise = rng.normal(0.0, np.sqrt(np.mean(speech**2)) * 10 ** (-30 / 20), len(speech)).astype(np.float32)
    return speech + noise, starts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--human-only", action="store_true", help="only the human-speech set")
    parser.add_argument(
        "--human-language", default="en", help="the rows' language tag (en: eSpeak NG's British voice; en-US)"
    )
    args = parser.parse_args()
    caption_human_speech.warn_unless_one_thread()
    if not args.human_only:
        espeak_study()
    others = {language: sentences for language, sentences in SENTENCES.items() if language != "en"}
    for reader in caption_human_speech.READERS:
        cases = caption_human_speech.build_cases(reader=reader)
        caption_human_speech.report(
            caption_human_speech.measure(cases, other_languages=others, language=args.human_language, reader=reader)
        )
    return 0


def espeak_items(seed: int = 0) -> list[tuple[str, str, np.ndarray, list[float]]]:
    """(language, script, samples, truth starts) of each half of each language's paragraph."""
    rng = np.random.default_rng(seed)
    items = []
    with tempfile.TemporaryDirectory() as folder:
        for language, sentences in SENTENCES.items():
            for half in (sentences[:2], sentences[2:]):
                samples, starts = speak(Path(folder), language, half, rng)
                items.append((language, " ".join(half), samples, starts))
    return items


def espeak_study() -> None:
    print("espeak-ng speech (another voice and speed than the aligner's):", flush=True)
    items = espeak_items()

    # An item is one half of the paragraph, said in every language: a row's siblings (the swap
    # check, sonic_model/captions/swaps.py) are the same half's rows in the other languages.
    def name(index: int) -> str:
        return f"{items[index][0]}-{index % 2}"

    def siblings(index: int, holding: dict[int, int] | None = None) -> list[Sibling]:
        """The other rows of `index`'s item, then its neighbour (the other half in its language:
        tasks/siblings.py); `holding`: row -> the row whose script it holds."""
        holding = holding or {}
        rows = [other for other in range(len(items)) if other != index and other % 2 == index % 2] + [index ^ 1]
        return [Sibling(name(other), items[other][0], items[holding.get(other, other)][1]) for other in rows]

    errors, audio_s, cpu_s, good, methods, good_swapped = [], 0.0, 0.0, [], {}, []
    for index, (language, script, samples, truth) in enumerate(items):
        started = caption_human_speech.cpu_seconds()
        captions = make_captions(script, language, samples)
        cpu_s += caption_human_speech.cpu_seconds() - started
        if captions.script_match is not None:
            check = find_swap(script, language, captions.cost_gap, siblings(index), samples, None, MIN_SCRIPT_MATCH)
            good_swapped.append(check.swap is not None)
        audio_s += len(samples) / 16000
        methods[language] = captions.method
        found = []
        for start in truth:  # the cue starting nearest each sentence start
            found.append(min(abs(cue.start - start) for cue in captions.cues))
        errors += found
        good.append(captions.script_match)
    # Two swaps: another row's audio in this row (the script read in its own language), and another
    # row's script in this row (read by the voice of the audio's language, the row's tag).
    swapped, same_language, script_swapped = [], [], []
    within_item = {"another row's audio": [], "another row's script": []}  # (figure caught, swap check caught)
    neighbour = []  # the neighbouring row's audio (the other half, same language): (figure, check)
    for a, b in itertools.permutations(range(len(items)), 2):
        language, script = items[a][0], items[a][1]
        captions = make_captions(script, language, items[b][2])
        swapped.append(captions.script_match)
        same_language.append(language == items[b][0])
        same_item = a % 2 == b % 2 and language != items[b][0] and captions.script_match is not None
        # Row a holds row b's audio, b of its item or its neighbour (the other half in its language).
        if captions.script_match is not None and (same_item or b == a ^ 1):
            check = find_swap(script, language, captions.cost_gap, siblings(a), items[b][2], None, MIN_SCRIPT_MATCH)
            found = check.swap is not None and check.swap.row_id == name(b)
            caught = (captions.script_match < MIN_SCRIPT_MATCH, found)
            (within_item["another row's audio"] if same_item else neighbour).append(caught)
        if language != items[b][0]:
            read = make_captions(script, items[b][0], items[b][2])
            script_swapped.append(read.script_match)
            if same_item and read.script_match is not None:  # rows a and b swapped scripts: a holds b's
                check = find_swap(
                    script, items[b][0], read.cost_gap, siblings(b, {a: b}), items[b][2], None, MIN_SCRIPT_MATCH
                )
                found = check.swap is not None and check.swap.row_id == name(a)
                within_item["another row's script"].append((read.script_match < MIN_SCRIPT_MATCH, found))
    errors_ms = np.array(errors) * 1000
    unmatched = sum(value is None for value in good)
    same_language = np.array([same for same, value in zip(same_language, swapped, strict=True) if value is not None])
    good = np.array([value for value in good if value is not None])
    swapped = np.array([value for value in swapped if value is not None])
    script_swapped = np.array([value for value in script_swapped if value is not None])
    print(f"items: {len(items)} in {len(SENTENCES)} languages, {audio_s:.1f} s of speech; methods {methods}")
    print(
        f"phrase-start error: median {np.median(errors_ms):.0f} ms, p95 {np.percentile(errors_ms, 95):.0f} ms, "
        f"max {errors_ms.max():.0f} ms (targets <= 80, <= 200)"
    )
    print(f"speed: {audio_s / cpu_s:.0f}x real time on one core (target >= 30x)")
    print(f"items without a match figure (the voice cannot read the script): {unmatched}")
    print(
        f"script match good: min {good.min():.3f} median {np.median(good):.3f}; "
        f"swapped: max {swapped.max():.3f} median {np.median(swapped):.3f}"
    )
    caught = (swapped < MIN_SCRIPT_MATCH).mean()
    failed = (good < MIN_SCRIPT_MATCH).sum()
    print(
        f"threshold {MIN_SCRIPT_MATCH}: swapped caught {caught:.1%} of {len(swapped)} (target >= 99%): "
        f"same language {(swapped[same_language] < MIN_SCRIPT_MATCH).mean():.1%} of {same_language.sum()}, "
        f"other language {(swapped[~same_language] < MIN_SCRIPT_MATCH).mean():.1%} of {(~same_language).sum()}; "
        f"good failed {failed} of {len(good)} (target 0)"
    )
    print(
        f"another language's script read by the row's voice: max {script_swapped.max():.3f}; caught "
        f"{(script_swapped < MIN_SCRIPT_MATCH).mean():.1%} of {len(script_swapped)}"
    )
    print(f"the swap check (an item's rows in the other languages): correct rows it fails {sum(good_swapped)} of "
          f"{len(good_swapped)}")  # fmt: skip
    for kind, pairs in within_item.items():
        figure, check = np.array(pairs).T
        print(
            f"    swaps within an item, {kind}: {len(pairs)}; caught by the figure {figure.mean():.1%}, by the swap "
            f"check {check.mean():.1%}, either {(figure | check).mean():.1%}"
        )
    figure, check = np.array(neighbour).T
    print(
        f"    the neighbouring row's audio (same language, the other half): {len(neighbour)}; caught by the "
        f"figure {figure.mean():.1%}, the swap check named it {check.mean():.1%}, either {(figure | check).mean():.1%}"
    )
    caption_human_speech.print_thresholds(good, {"swapped": swapped, "script read by the row's voice": script_swapped})


if __name__ == "__main__":
    sys.exit(main())
