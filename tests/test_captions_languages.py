"""A catalog in six languages (en, de, es, hi, zh, ar) with `script_text`, rendered by the preview
generator through `sonic-catalog render`: every video, renditions included, is published with a
.vtt, a .srt and a mov_text track in the row's language (issue 24, "done when").

The speech is made at test time by the espeak-ng command (another voice variant and speed than
the aligner's own eSpeak NG voice), as CI installs it; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import av
import pandas as pd
import pytest
from caption_tracks import caption_track_text

from tests.test_catalog_flow import RESOLUTION, ledger_of, run_cli, run_id_of

FIXTURES = Path(__file__).parent / "fixtures"

# language: (espeak-ng voice, ISO 639-2 tag of the track, sentences)
SCRIPTS = {
    "en": ("en", "eng", ["Welcome to the first lesson of this course.", "Today we learn how captions are timed.",
                         "Every sentence gets its own cue on screen."]),
    "de": ("de", "deu", ["Willkommen zur ersten Lektion.", "Heute lernen wir, wie Untertitel entstehen.",
                         "Jeder Satz bekommt seinen Platz."]),
    "es": ("es", "spa", ["Bienvenidos a la primera lección del curso.", "Hoy aprendemos cómo se sincronizan los "
                         "subtítulos.", "Cada frase tiene su propio lugar."]),
    "hi": ("hi", "hin", ["इस पाठ्यक्रम के पहले पाठ में आपका स्वागत है।", "आज हम सीखेंगे कि उपशीर्षक कैसे बनते हैं।",
                         "हर वाक्य को अपनी जगह मिलती है।"]),
    "zh": ("cmn-latn-pinyin", "zho", ["欢迎来到本课程的第一课。", "今天我们学习字幕的时间。",
                                      "每一句话都有自己的字幕。"]),
    "ar": ("ar", "ara", ["مرحبا بكم في الدرس الأول من هذه الدورة.", "اليوم نتعلم كيف يتم توقيت الترجمة.",
                         "كل جملة لها مكانها على الشاشة."]),
}  # fmt: skip
WITH_RENDITION = ("zh", "ar")  # a vertical rendition for the two scripts furthest from Latin

pytestmark = pytest.mark.slow  # six renders (two with a rendition): ~4 min on 2 busy cores


@pytest.fixture(scope="module")
def six_languages(tmp_path_factory):
    root = tmp_path_factory.mktemp("six-languages")
    media = root / "media"
    media.mkdir()
    shutil.copy(FIXTURES / "portrait_astronaut.jpg", media / "astronaut.jpg")
    rows = []
    for language, (voice, _, sentences) in SCRIPTS.items():
        text = " ".join(sentences)
        wav = media / f"{language}.wav"
        subprocess.run(["espeak-ng", "-v", f"{voice}+f2", "-s", "145", "-w", str(wav), text], check=True)
        rows.append({"row_id": f"cap-{language}", "portrait_uri": "media/astronaut.jpg",
                     "audio_uri": f"media/{language}.wav", "language": language, "consent_ref": "release/test-001",
                     "collection": "course", "min_resolution": RESOLUTION, "script_text": text,
                     "renditions": "vertical" if language in WITH_RENDITION else None})  # fmt: skip
    manifest = root / "manifest.parquet"
    pd.DataFrame(rows).to_parquet(manifest)
    catalog = root / "catalog"
    code, out, err = run_cli("render", str(manifest), "--catalog", str(catalog))
    return {"catalog": catalog, "code": code, "out": out, "err": err, "run_id": run_id_of(out)}


def test_every_language_publishes(six_languages) -> None:
    ledger = ledger_of(str(six_languages["catalog"]), six_languages["run_id"]).set_index("row_id")
    assert dict(ledger.status) == {f"cap-{language}": "published" for language in SCRIPTS}, ledger.reason.to_dict()
    assert six_languages["code"] == 0


@pytest.mark.parametrize("language", list(SCRIPTS))
def test_each_video_has_vtt_srt_and_a_tagged_caption_track(six_languages, language: str) -> None:
    _, iso, sentences = SCRIPTS[language]
    prefix = six_languages["catalog"] / "course" / language / f"cap-{language}"
    sidecar = json.loads(prefix.with_suffix(".json").read_text())
    captions = sidecar["captions"]
    assert captions["method"] == "espeak-dtw" and captions["script_match"] > 1.5, captions
    assert captions["cues"] >= len(sentences)
    vtt = prefix.with_suffix(".vtt").read_text(encoding="utf-8")
    srt = prefix.with_suffix(".srt").read_text(encoding="utf-8")
    assert vtt.startswith(f"WEBVTT\nLanguage: {language}\n")
    first_word = sentences[0][:1] if language == "zh" else sentences[0].split()[0]
    assert first_word in vtt and first_word in srt
    videos = [prefix.with_suffix(".mp4")] + ([Path(f"{prefix}.vertical.mp4")] if language in WITH_RENDITION else [])
    for video in videos:
        with av.open(str(video)) as container:
            tracks = [(s.codec_context.name, s.metadata.get("language")) for s in container.streams.subtitles]
        assert tracks == [("mov_text", iso)], video
        assert first_word in caption_track_text(video), video
    # Lip sync was measured with confidence, not waved through as unmeasured.
    assert sidecar["qa"]["figures"]["sync_status"] == "measured"
