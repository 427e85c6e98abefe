"""The caption track inside the MP4: a `mov_text` (3GPP timed text) stream muxed in by ffmpeg.

MP4 players (QuickTime, Safari, VLC, most smart TVs) list it as a subtitle track they can turn
on. The language is stored as an ISO 639-2 code (MP4's `mdhd` box has no room for BCP-47).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from sonic_model.captions.languages import primary_language

# ISO 639-1 -> ISO 639-2/T for the languages a catalog is likely to hold; anything else "und".
ISO_639_2 = {
    "ar": "ara", "bg": "bul", "bn": "ben", "ca": "cat", "cs": "ces", "da": "dan", "de": "deu", "el": "ell",
    "en": "eng", "es": "spa", "et": "est", "fa": "fas", "fi": "fin", "fr": "fra", "ga": "gle", "he": "heb",
    "hi": "hin", "hr": "hrv", "hu": "hun", "id": "ind", "it": "ita", "ja": "jpn", "ko": "kor", "lt": "lit",
    "lv": "lav", "ms": "msa", "mt": "mlt", "nb": "nob", "nl": "nld", "no": "nor", "pl": "pol", "pt": "por",
    "ro": "ron", "ru": "rus", "sk": "slk", "sl": "slv", "sr": "srp", "sv": "swe", "sw": "swa", "ta": "tam",
    "th": "tha", "tr": "tur", "uk": "ukr", "ur": "urd", "vi": "vie", "zh": "zho", "yue": "yue", "cmn": "cmn",
}  # fmt: skip


def iso639_2(language: str) -> str:
    primary = primary_language(language)
    if len(primary) == 3:
        return primary
    return ISO_639_2.get(primary, "und")


def ffmpeg_executable() -> str:
    from sonic_model.encode import ffmpeg_executable as found  # the project's one ffmpeg

    return found()


def mux_caption_track(video: str | Path, srt_text: str, language: str, out_path: str | Path) -> Path:
    """`video` with a mov_text subtitle track from `srt_text`, tagged with the language, at `out_path`.

    Picture and sound are copied, not encoded again; the file's metadata (AI disclosure) is kept.
    """
    out_path = Path(out_path)
    with tempfile.TemporaryDirectory(prefix="captions-") as folder:
        srt = Path(folder) / "captions.srt"
        srt.write_text(srt_text, encoding="utf-8")
        command = [
            ffmpeg_executable(), "-nostdin", "-y", "-v", "error", "-i", str(video),
            "-sub_charenc", "UTF-8", "-i", str(srt),
            "-map", "0:v", "-map", "0:a?", "-map", "1:0", "-c", "copy", "-c:s", "mov_text",
            "-metadata:s:s:0", f"language={iso639_2(language)}", "-disposition:s:0", "0",
            "-map_metadata", "0", "-movflags", "+faststart", str(out_path),
        ]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the caption track: {finished.stderr.strip()[-400:]}")
    return out_path
