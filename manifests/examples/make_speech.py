"""Regenerate the example manifest's script audio from its `script_text` (not run by the tests).

Each distinct `audio_uri` of `catalog.csv` is its rows' `script_text` said by the `espeak-ng`
command (a female voice variant per language, 150 words/min; both presenters are women), with
0.3 s of silence before and after, encoded into the file's own container as people hand them in:
WAV (44.1 kHz PCM), MP3, M4A (AAC, 48 kHz) and FLAC. Every row's `duration_s` is then set to the
file's measured duration and `catalog.parquet` is rebuilt from the CSV.

    PYTHONPATH=$PWD .venv/bin/python manifests/examples/make_speech.py

The script text is the captions' source: the demo publishes every video with captions, and the
QA's script-vs-audio match checks that each file says its row's script.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
# espeak-ng voice (with variant) per row language; Mandarin is cmn-latn-pinyin
# (sonic_model/captions/espeak.py says why).
VOICES = {
    "en": "en-us+f3",
    "en-US": "en-us+f3",
    "es": "es+f2",
    "fr": "fr+f3",
    "de": "de+f4",
    "zh-Hans": "cmn-latn-pinyin+f2",
}
# ffmpeg encoder options per container: the formats the example has always shipped.
ENCODE = {
    ".wav": ["-ar", "44100", "-c:a", "pcm_s16le"],
    ".mp3": ["-ar", "44100", "-c:a", "libmp3lame", "-b:a", "96k"],
    ".m4a": ["-ar", "48000", "-c:a", "aac", "-b:a", "96k"],
    ".flac": ["-ar", "44100", "-c:a", "flac"],
}
PAD_S = 0.3


def synthesize(text: str, voice: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text], check=True)
        pad = f"adelay={int(PAD_S * 1000)},apad=pad_dur={PAD_S}"
        command = ["ffmpeg", "-v", "error", "-y", "-i", str(raw), "-af", pad, "-ac", "1", *ENCODE[out.suffix]]
        subprocess.run([*command, "-map_metadata", "-1", str(out)], check=True)


def duration_s(path: Path) -> float:
    probe = ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)]
    return float(subprocess.run(probe, check=True, capture_output=True, text=True).stdout)


def main() -> int:
    sys.path.insert(0, str(EXAMPLES.parents[1]))
    from manifests.schema import manifest_from_csv

    table = EXAMPLES / "catalog.csv"
    with table.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    made: dict[str, str] = {}  # audio_uri -> the script said in it
    for row in rows:
        audio, script = row["audio_uri"], row["script_text"]
        if audio not in made:
            synthesize(script, VOICES[row["language"]], EXAMPLES / audio)
            made[audio] = script
        elif made[audio] != script:
            raise ValueError(f"{audio} is shared by rows with different scripts")
        row["duration_s"] = f"{duration_s(EXAMPLES / audio):.2f}"
        print(f"{row['row_id']}: {audio} {row['duration_s']} s")
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    manifest_from_csv(table, EXAMPLES / "catalog.parquet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
