"""Caption alignment's memory and time against the script's length (it must not grow with it much).

A script of repeated course sentences, said by the espeak-ng command (another voice and speed than
the aligner's), 1, 5 and 10 minutes long; `make_captions` with silero-vad's speech segments, as
the pipeline calls it. Peak memory is what Python and numpy allocate during the alignment
(tracemalloc, a second run: tracing slows the first one's timing down), over what was held before.
Most of what remains is the synthetic speech of the whole script and the warp's step matrix (one
byte a band cell), both bounded by the row's audio limit (600 s by default).

    PYTHONPATH=$PWD .venv/bin/python benchmarks/caption_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import tracemalloc

from sonic_model.audio import load_audio, speech_segments
from sonic_model.captions import make_captions

SENTENCES = [
    "The course starts with a short history of the field.",
    "Then we look at the tools you will use every day.",
    "Each lesson ends with a small exercise and a quiz.",
    "You can pause the video at any time and come back later.",
]


def measure(minutes: float) -> None:
    words: list[str] = []
    while len(" ".join(words)) < minutes * 60 * 15:  # about 15 characters a second at 160 words/min
        words += SENTENCES
    script = " ".join(words)
    with tempfile.TemporaryDirectory() as folder:
        subprocess.run(["espeak-ng", "-v", "en-us+m3", "-s", "160", "-w", f"{folder}/a.wav", script], check=True)
        clip = load_audio(f"{folder}/a.wav")
    segments = speech_segments(clip)
    started = time.perf_counter()
    captions = make_captions(script, "en", clip.samples, segments)
    seconds = time.perf_counter() - started
    tracemalloc.start()  # a second run for memory: tracing slows every allocation down
    make_captions(script, "en", clip.samples, segments)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    audio_s = len(clip.samples) / 16000
    print(
        f"{audio_s:6.0f} s of speech: aligned in {seconds:5.1f} s ({audio_s / seconds:.0f}x real time), "
        f"peak {peak / 2**20:5.1f} MB allocated, {len(captions.cues)} cues, match {captions.script_match:.2f}"
    )


def main() -> int:
    for minutes in (1, 5, 10):
        measure(minutes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
