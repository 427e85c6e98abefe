"""The script-vs-audio match on short clips: one phrase of 1-5 words (1-2 s of speech).

Each phrase is said by the espeak-ng command with another voice variant (`+m3`) and speed (150
words/min) than the aligner's, with 0.5 s of room noise (white, -54 dBFS) either side, in five
languages. Every phrase's script against its own audio (good) and against every other phrase of
its language (wrong), through `make_captions` with silero-vad's speech segments.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/caption_short_clips.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np

from sonic_model.audio import AudioClip, load_audio, speech_segments
from sonic_model.captions import espeak, make_captions
from sonic_model.captions.checks import MIN_SCRIPT_MATCH

PHRASES = {
    "en": [
        "Thank you.",
        "Hello and welcome.",
        "See you in the next lesson.",
        "Let's get started.",
        "Good morning, everyone.",
    ],
    "de": ["Danke schön.", "Hallo und willkommen.", "Bis zur nächsten Lektion.", "Fangen wir an."],
    "es": ["Gracias.", "Hola y bienvenidos.", "Nos vemos en la próxima lección.", "Empecemos."],
    "fr": ["Merci.", "Bonjour à tous.", "À la prochaine leçon.", "Commençons."],
    "zh": ["谢谢。", "大家好，欢迎。", "我们下节课见。", "我们开始吧。"],
}


def main() -> int:
    rng = np.random.default_rng(0)
    clips = []
    with tempfile.TemporaryDirectory() as folder:
        for language, phrases in PHRASES.items():
            for index, phrase in enumerate(phrases):
                wav = f"{folder}/{language}{index}.wav"
                voice = espeak.voice_for(language) + "+m3"
                subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", wav, phrase], check=True)
                pad = np.zeros(8000, np.float32)
                samples = np.concatenate([pad, load_audio(wav).samples, pad])
                samples += rng.normal(0.0, 0.002, len(samples)).astype(np.float32)
                clips.append((language, phrase, samples, speech_segments(AudioClip(samples))))
    good, wrong = [], []
    for language, phrase, samples, segments in clips:
        for other_language, script, _, _ in clips:
            if other_language != language:
                continue
            match = make_captions(script, language, samples, segments).script_match
            (good if script == phrase else wrong).append(match)
    good, wrong = np.array(good), np.array(wrong)
    seconds = [len(samples) / 16000 - 1.0 for _, _, samples, _ in clips]
    print(f"{len(clips)} phrases in {len(PHRASES)} languages, {min(seconds):.1f}-{max(seconds):.1f} s of speech each")
    print(
        f"correct scripts: min {good.min():.2f} median {np.median(good):.2f}; failed {(good < MIN_SCRIPT_MATCH).sum()}"
    )
    print(
        f"another phrase's script: max {wrong.max():.2f} median {np.median(wrong):.2f}; "
        f"caught {(wrong < MIN_SCRIPT_MATCH).sum()} of {len(wrong)} ({(wrong < MIN_SCRIPT_MATCH).mean():.0%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
