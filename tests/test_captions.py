"""Captions from a script: alignment against speech with known boundaries, cue rules, file formats, QA."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from sonic_model.audio import load_audio
from sonic_model.captions import check_captions, espeak, make_captions, parse_captions
from sonic_model.captions.checks import check_coverage, check_cue_rules
from sonic_model.captions.cues import LATIN_RULES, UNSPACED_RULES
from sonic_model.captions.formats import Cue, check_cues, write_srt, write_vtt
from sonic_model.captions.text import display_width, tokenize
from sonic_model.errors import CaptionsError

EN = [
    "Welcome to the first lesson of this course.",
    "Today we learn how captions are timed.",
    "Every sentence gets its own cue on screen.",
]
ZH = ["欢迎来到本课程的第一课。", "今天我们学习字幕的时间。", "每一句话都有自己的字幕。"]
DE = [
    "Willkommen zur ersten Lektion.",
    "Heute lernen wir, wie Untertitel entstehen.",
    "Jeder Satz bekommt seinen Platz.",
]


def spoken(tmp_path: Path, voice: str, sentences: list[str], pause_s: float = 0.7) -> tuple[np.ndarray, list[float]]:
    """Sentences said by the espeak-ng command (another voice and speed than the aligner's), joined by
    pauses, written to a real WAV and decoded back; returns the samples and each sentence's start."""
    parts, starts, at = [], [], 0.3
    for index, sentence in enumerate(sentences):
        wav = tmp_path / f"s{index}.wav"
        subprocess.run(["espeak-ng", "-v", f"{voice}+f2", "-s", "145", "-w", str(wav), sentence], check=True)
        samples = load_audio(wav).samples
        voiced = np.flatnonzero(np.abs(samples) > 0.01)
        samples = samples[voiced[0] : voiced[-1] + 1]
        starts.append(at)
        parts += [samples, np.zeros(int(pause_s * 16000), np.float32)]
        at += len(samples) / 16000 + pause_s
    return np.concatenate([np.zeros(int(0.3 * 16000), np.float32)] + parts), starts


def sentence_starts(captions, count: int) -> list[float]:
    return [cue.start for cue in captions.cues][:count]


@pytest.mark.parametrize(("language", "sentences"), [("en", EN), ("zh", ZH), ("de", DE)])
def test_sentence_starts_found_within_150_ms(tmp_path: Path, language: str, sentences: list[str]) -> None:
    samples, truth = spoken(tmp_path, "cmn-latn-pinyin" if language == "zh" else language, sentences)
    captions = make_captions(" ".join(sentences), language, samples)
    assert captions.method == "espeak-dtw"
    assert len(captions.cues) == len(sentences), [cue.text for cue in captions.cues]
    errors = np.abs(np.array(sentence_starts(captions, len(truth))) - truth)
    assert errors.max() < 0.15, (errors, captions.cues)
    assert check_captions(captions) == []
    for cue, sentence in zip(captions.cues, sentences, strict=False):
        assert cue.text.replace(" ", "") == sentence.replace(" ", "")


def test_other_rows_audio_fails_naming_the_figure(tmp_path: Path) -> None:
    samples, _ = spoken(tmp_path, "en", EN)
    german_script = make_captions(" ".join(DE), "de", samples)
    reasons = check_captions(german_script)
    assert any("script-vs-audio match" in reason for reason in reasons), (german_script.script_match, reasons)
    matched = make_captions(" ".join(EN), "en", samples)
    assert matched.script_match > german_script.script_match


def test_language_without_voice_is_timed_proportionally(tmp_path: Path) -> None:
    samples, truth = spoken(tmp_path, "en", EN)
    captions = make_captions(" ".join(EN), "xx-unknown", samples)
    assert captions.method == "proportional" and captions.script_match is None
    assert captions.cues[0].start == pytest.approx(truth[0], abs=0.1)


def test_a_script_the_voice_cannot_read_is_timed_proportionally(tmp_path: Path) -> None:
    # eSpeak NG's Japanese voice says "Chinese letter" in English for each kanji: no reference.
    kanji = "このコースは短い歴史から始まります。次に使う道具を見ていきます。"
    assert "(en)" in "".join(espeak.engine().phoneme_words(kanji, "ja"))  # what the rule is for
    assert not espeak.reads(kanji, "ja") and espeak.reads("こんにちは、げんきですか。", "ja")
    samples, truth = spoken(tmp_path, "en", EN)
    captions = make_captions(kanji, "ja", samples)
    assert captions.method == "proportional" and captions.script_match is None


@pytest.mark.parametrize("tag", ["zh", "zh-Hans", "zh-CN", "zh-TW"])
def test_mandarin_is_read_as_mandarin(tag: str) -> None:
    # The "cmn" voice turned characters into pinyin read with English rules ("zhe four" for 这).
    voice = espeak.voice_for(tag)
    words = espeak.engine().phoneme_words("这门课程从一段简短的历史开始。", voice)
    assert not any("(en)" in word for word in words), words


def test_the_same_script_gives_the_same_speech_and_figure_whatever_was_said_before(tmp_path: Path) -> None:
    # libespeak-ng keeps its pitch flutter's phase from one utterance to the next: in one process
    # the same text came out longer or shorter, and one row's match moved by up to 0.17 between
    # calls. A verdict must not depend on which rows a worker aligned before.
    text = " ".join(DE)
    first = espeak.synthesize(text, "de")
    espeak.synthesize("Something else entirely, said in between.", "en")
    again = espeak.synthesize(text, "de")
    assert np.array_equal(first.samples, again.samples) and first.word_starts == again.word_starts
    samples, _ = spoken(tmp_path, "en", EN)
    figures = {make_captions(text, "de", samples).script_match for _ in range(3)}
    assert len(figures) == 1, figures


def test_the_synthesis_helper_is_replaced_after_its_calls_and_when_killed(monkeypatch) -> None:
    # Each fresh load of libespeak-ng 1.51 keeps 3-4 KB, so loads happen in a helper process that
    # is replaced every HELPER_CALLS calls; a helper killed (out of memory, by hand) is replaced too.
    text = " ".join(EN)
    reference = espeak.synthesize(text, "en")
    monkeypatch.setattr(espeak, "HELPER_CALLS", 2)
    helper = espeak._HELPER
    pids = set()
    for _ in range(5):
        assert np.array_equal(espeak.synthesize(text, "en").samples, reference.samples)
        pids.add(helper.process.pid)
    assert len(pids) >= 3, pids
    helper.process.kill()
    helper.process.wait()
    assert np.array_equal(espeak.synthesize(text, "en").samples, reference.samples)
    with pytest.raises(ValueError, match="no voice"):  # the helper's error, raised here
        espeak.synthesize(text, "no-such-voice")


def test_tokens_keep_words_whole_and_split_unspaced_scripts() -> None:
    assert [t.text for t in tokenize("Hello, world! (yes)")] == ["Hello,", "world!", "(yes)"]
    assert [t.text for t in tokenize("你好，世界。OK")] == ["你", "好，", "世", "界。", "OK"]


def test_long_script_cues_keep_the_caption_rules(tmp_path: Path) -> None:
    text = " ".join(EN * 3)
    samples, _ = spoken(tmp_path, "en", EN * 3, pause_s=0.3)
    captions = make_captions(text, "en", samples)
    assert check_cue_rules(captions.cues, LATIN_RULES) == []
    for cue in captions.cues:
        assert 1.0 - 1e-6 <= cue.end - cue.start <= 7.0
        assert all(len(line) <= 42 for line in cue.lines) and len(cue.lines) <= 2
    assert " ".join(cue.text for cue in captions.cues).split() == text.split()


def test_vtt_and_srt_round_trip_and_given_files_are_checked() -> None:
    cues = [Cue(0.5, 2.0, ("Hello there,", "friend.")), Cue(2.5, 4.25, ("你好。",))]
    vtt, srt = write_vtt(cues, "en"), write_srt(cues)
    assert vtt.startswith("WEBVTT\nLanguage: en\n\n00:00:00.500 --> 00:00:02.000\nHello there,\nfriend.")
    assert "2\n00:00:02,500 --> 00:00:04,250\n你好。" in srt
    for parsed in (parse_captions(vtt), parse_captions(srt)):
        assert [(cue.start, cue.end, cue.plain_lines) for cue in parsed] == [(c.start, c.end, c.lines) for c in cues]
    check_cues(cues, 4.3)
    with pytest.raises(CaptionsError, match="ends after the audio"):
        check_cues(cues, 3.0)
    with pytest.raises(CaptionsError, match="overlaps"):
        check_cues([Cue(0, 2, ("a",)), Cue(1, 3, ("b",))], 5)
    with pytest.raises(CaptionsError, match="time order"):
        check_cues([Cue(2, 3, ("a",)), Cue(0, 1, ("b",))], 5)
    with pytest.raises(CaptionsError, match="no 'start --> end'"):
        parse_captions("just some text\nhere")


def test_a_script_s_brackets_and_ampersands_stay_words_in_every_format(tmp_path: Path) -> None:
    # A programming course's "<video>" was read as a tag: gone from the WebVTT file in a browser,
    # and dropped by ffmpeg from the MP4's caption track made from the SubRip file.
    from sonic_model.captions.track import ffmpeg_executable, mux_caption_track

    cues = [Cue(0.0, 1.0, ("Use the <video> element,", "R&D <b>not</b> bold")), Cue(1.0, 2.0, ("{\\an8} x < y",))]
    vtt, srt = write_vtt(cues, "en"), write_srt(cues)
    assert "Use the &lt;video&gt; element," in vtt and "R&amp;D &lt;b&gt;not&lt;/b&gt; bold" in vtt
    for parsed in (parse_captions(vtt), parse_captions(srt)):
        assert [cue.plain_lines for cue in parsed] == [cue.lines for cue in cues]
    video = tmp_path / "v.mp4"
    subprocess.run([ffmpeg_executable(), "-v", "error", "-f", "lavfi", "-i", "color=size=64x64:d=2", "-c:v", "libx264",
                    str(video)], check=True)  # fmt: skip
    out = mux_caption_track(video, srt, "en", tmp_path / "captioned.mp4")
    track = subprocess.run([ffmpeg_executable(), "-v", "error", "-i", str(out), "-map", "0:s:0", "-f", "srt", "-"],
                           capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert [cue.text for cue in parse_captions(track)] == [" ".join(cue.lines) for cue in cues]


def test_a_given_file_s_styling_is_kept_in_its_format_and_converted_in_the_other() -> None:
    from sonic_model.captions.formats import vtt_style_blocks

    given_vtt = (
        "WEBVTT - course\n\nSTYLE\n::cue(.loud) { color: red }\n\nNOTE a comment\n\n"
        "intro\n00:00.500 --> 00:02.000 align:start  line:0\n<v Roger Bingham>Fish &amp; chips &lt;3</v>\n\n"
        "00:02.100 --> 00:03.500\n<c.loud>Salt</c> and <I>vinegar</I>&nbsp;too\n\n"
        "00:03.600 --> 00:04.000\n<00:03.600>karaoke <00:03.800>style <ruby>漢<rt>kan</rt></ruby>\n\n"
        "00:04.000 --> 00:04.500\n<c.loud></c>\n"
    )
    cues = parse_captions(given_vtt)
    assert [cue.text for cue in cues] == ["Fish & chips <3", "Salt and vinegar\xa0too", "karaoke style 漢", ""]
    assert (cues[0].identifier, cues[0].settings) == ("intro", "align:start line:0")
    kept = write_vtt(cues, "en", vtt_style_blocks(given_vtt))
    assert "STYLE\n::cue(.loud) { color: red }\n\nintro\n00:00:00.500 --> 00:00:02.000 align:start line:0\n" in kept
    assert "<v Roger Bingham>Fish &amp; chips &lt;3</v>" in kept and "<c.loud>Salt</c>" in kept
    srt = write_srt(cues)
    assert srt == (
        "1\n00:00:00,500 --> 00:00:02,000\nFish & chips <3\n\n2\n00:00:02,100 --> 00:00:03,500\n"
        "Salt and <i>vinegar</i>\xa0too\n\n3\n00:00:03,600 --> 00:00:04,000\nkaraoke style 漢\n"
    )  # the markup-only cue has nothing SubRip can show
    given_srt = '1\n00:00:00,000 --> 00:00:01,000\n{\\an8}<font color="red">Top</font> & <i>it</i>\n'
    (cue,) = parse_captions(given_srt)
    assert cue.text == "Top & it" and write_srt([cue]) == given_srt
    assert "\nTop &amp; <i>it</i>\n" in write_vtt([cue], "en")


def test_given_files_as_people_save_them_are_read_or_refused_naming_what_to_fix() -> None:
    from tasks.probe import checked_captions_text

    srt = "1\r\n00:00:00,500 --> 00:00:02,000\r\nCafé, señor.\r\n\r\n"
    srt += "2\r\n00:00:02,100 --> 00:00:03,000\r\nÀ bientôt.\r\n"
    for saved in (srt.encode("utf-8"), srt.encode("utf-8-sig"), srt.encode("utf-16"), srt.encode("utf-16-be")):
        if saved[:2] == b"\x00\x31":  # big-endian without a byte-order mark: add one, as Windows writes it
            saved = "\ufeff".encode("utf-16-be") + saved
        text = checked_captions_text("media/a.srt", saved, 3.0)
        assert [cue.text for cue in parse_captions(text)] == ["Café, señor.", "À bientôt."]
    refused = {
        "not UTF-8 text (byte 37); save it as UTF-8": srt.encode("cp1252"),
        "NUL bytes (the first at byte 1): UTF-16 without a byte-order mark": srt.encode("utf-16-le"),
        "block 2: cannot read the times in '00:00:02,100 -->'": srt.encode("utf-8")[:-29],
        "no cues found": b"",
        "cue 2 (00:00:02.100 --> 00:00:03.000) ends after the audio (2.50 s)": srt.encode("utf-8"),
    }
    for message, saved in refused.items():
        with pytest.raises(CaptionsError, match=re.escape(message)) as raised:
            checked_captions_text("media/a.srt", saved, 2.5 if "after the audio" in message else 3.0)
        assert str(raised.value).startswith("captions_uri 'media/a.srt'"), raised.value


def test_invisible_characters_pasted_with_a_script_do_not_change_its_cues(tmp_path: Path) -> None:
    # Text from word processors and web pages: a zero-width space, a byte-order mark after a full
    # stop (its sentence's cue ran on into the next), a soft hyphen, a right-to-left mark.
    sentences = ["Welcome to the course on data analysis.", "Today we look at the tools you will use.", "It is free."]
    samples, _ = spoken(tmp_path, "en", sentences)
    pasted = "Welcome\u200b to the course on data ana\u00adlysis.\u00a0Today we look at the tools you will use."
    pasted += "\ufeff It is free."
    clean, cues = make_captions(" ".join(sentences), "en", samples).cues, make_captions(pasted, "en", samples).cues
    assert [cue.lines for cue in cues] == [cue.lines for cue in clean] == [(sentence,) for sentence in sentences]
    assert [cue.start for cue in cues] == [cue.start for cue in clean]
    arabic = tokenize("مرحبا.‏ بكم")  # a mark after the full stop
    assert arabic[0].ends_sentence and arabic[0].ends_phrase and display_width(arabic[0].text) == 6


def test_coverage_and_silence_checks() -> None:
    speech = [(0.0, 2.0), (5.0, 6.0)]
    assert check_coverage([Cue(0.0, 2.0, ("a",)), Cue(5.0, 6.0, ("b",))], speech) == []
    assert "under cues" in check_coverage([Cue(0.0, 2.0, ("a",))], speech)[0]
    assert "silence" in check_coverage([Cue(0.0, 6.0, ("a b",))], speech)[0]
    fast = [Cue(0.0, 1.0, ("这是一个非常非常快的字幕句子",))]
    assert "reading speed" in check_cue_rules(fast, UNSPACED_RULES)[0]


def test_render_one_with_a_script_writes_captions_and_a_track(tmp_path: Path) -> None:
    import av

    from sonic_catalog.cli import main

    samples, _ = spoken(tmp_path, "en", EN[:2])
    import soundfile

    audio = tmp_path / "speech.wav"
    soundfile.write(audio, samples, 16000)
    script = tmp_path / "script.txt"
    script.write_text(" ".join(EN[:2]), encoding="utf-8")
    out = tmp_path / "lesson.mp4"
    fixtures = Path(__file__).parent / "fixtures"
    code = main(["render-one", "--portrait", str(fixtures / "portrait_astronaut.jpg"), "--audio", str(audio),
                 "--out", str(out), "--min-resolution", "256", "--script", str(script), "--language", "en",
                 "--no-credentials"])  # fmt: skip
    assert code == 0
    assert out.with_suffix(".vtt").read_text().startswith("WEBVTT\nLanguage: en\n")
    assert parse_captions(out.with_suffix(".srt").read_text())[0].text.startswith("Welcome")
    with av.open(str(out)) as container:
        assert [(s.codec_context.name, s.metadata.get("language")) for s in container.streams.subtitles] == [
            ("mov_text", "eng")
        ]


def test_warp_z_score_is_the_same_whatever_the_distance_scale() -> None:
    # The match figure must not depend on how far the two voices are apart: scaling every frame
    # distance (both sequences x3) leaves each step's z-score in its row as it was.
    from sonic_model.captions.dtw import warp

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(120, 12))
    query = np.repeat(reference, 2, axis=0)[::2][:100] + rng.normal(scale=0.3, size=(100, 12))
    voiced = np.ones(120, bool), np.ones(100, bool)
    near = warp(reference, query, 30, *voiced)
    scaled = warp(reference * 3, query * 3, 30, *voiced)
    assert scaled.mean_cost == pytest.approx(3 * near.mean_cost)
    assert scaled.mean_z == pytest.approx(near.mean_z)
    unrelated = warp(reference, rng.normal(size=(100, 12)), 30, *voiced)
    assert near.mean_z < -1.5 < unrelated.mean_z, (near.mean_z, unrelated.mean_z)
    assert np.isnan(warp(reference, query, 30).mean_z)  # no voiced masks: no figure


@pytest.mark.parametrize("seed", range(6))
def test_warp_finds_the_cheapest_path_in_the_band_and_its_z_score(seed: int) -> None:
    # Against the textbook recurrence in numpy (the warp computes distances a block of rows at a
    # time by matrix products, and each row's statistics beside its compiled recurrence).
    from sonic_model.captions.dtw import _band, warp

    rng = np.random.default_rng(seed)
    n, m = (int(v) for v in rng.integers(20, 400, 2))
    half_width = int(rng.integers(max(abs(n - m) // 2, 3), 200))
    reference, query = rng.normal(size=(n, 12)), rng.normal(size=(m, 12))
    reference_voiced, query_voiced = rng.random(n) > 0.2, rng.random(m) > 0.2
    path = warp(reference, query, half_width, reference_voiced, query_voiced)

    low, high = _band(n, m, half_width)
    local = np.sqrt(((reference[:, None, :] - query[None, :, :]) ** 2).sum(axis=2))
    cost = np.full((n + 1, m + 1), np.inf)
    cost[0, 0] = 0.0
    for i in range(n):
        for j in range(low[i], high[i]):
            cost[i + 1, j + 1] = local[i, j] + min(cost[i, j], cost[i, j + 1], cost[i + 1, j])
    steps = np.diff(np.stack([path.reference, path.query]), axis=1)
    assert path.reference[0] == path.query[0] == 0 and (path.reference[-1], path.query[-1]) == (n - 1, m - 1)
    assert set(map(tuple, steps.T)) <= {(1, 0), (0, 1), (1, 1)}
    assert all(low[i] <= j < high[i] for i, j in zip(path.reference, path.query, strict=True))
    assert local[path.reference, path.query].sum() == pytest.approx(cost[n, m], rel=1e-9)
    band = (np.arange(m) >= low[:, None]) & (np.arange(m) < high[:, None]) & query_voiced
    mean = np.array([local[i][band[i]].mean() for i in range(n)])
    std = np.array([local[i][band[i]].std() + 1e-6 for i in range(n)])
    on = reference_voiced[path.reference] & query_voiced[path.query]
    z = (local[path.reference, path.query] - mean[path.reference]) / std[path.reference]
    assert path.mean_z == pytest.approx(z[on].mean(), rel=1e-6)


def test_a_truncated_or_corrupt_compiled_warp_cache_is_compiled_again(tmp_path) -> None:
    # numba keeps the compiled warp in a cache file; one that cannot be read failed every process
    # from then on. Each run is a new process with its own cache folder.
    import sys

    run = [sys.executable, "-c", "import numpy as np; from sonic_model.captions.dtw import warp; "
           "print(warp(np.eye(30, 12), np.eye(33, 12), 8, np.ones(30, bool), np.ones(33, bool)).mean_z)"]  # fmt: skip
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    first = subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout
    cached = sorted(tmp_path.rglob("*.nb[ic]"))
    assert {path.suffix for path in cached} == {".nbi", ".nbc"}, cached
    for damage in (lambda path: path.write_bytes(b""), lambda path: path.write_bytes(path.read_bytes()[:7] + b"junk")):
        for path in cached:
            damage(path)
        result = subprocess.run(run, env=env, capture_output=True, text=True)
        assert result.returncode == 0 and result.stdout == first, result.stderr[-2000:]
        assert all(path.stat().st_size > 20 for path in cached)  # written again


def test_the_warp_runs_where_numba_has_nowhere_to_cache_it(tmp_path) -> None:
    # A read-only install run by a user without a writable home: numba finds no folder for its
    # cache and refused to compile, so importing the captions failed. Reproduced as root too:
    # numba is told to look only in $NUMBA_CACHE_DIR, which cannot be made (under a file).
    import sys

    run = [sys.executable, "-c", "import numpy as np; from sonic_model.captions.dtw import warp; "
           "print(warp(np.eye(30, 12), np.eye(33, 12), 8, np.ones(30, bool), np.ones(33, bool)).mean_z)"]  # fmt: skip
    cached = subprocess.run(run, env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}, capture_output=True,
                            text=True, check=True)  # fmt: skip
    (tmp_path / "a-file").write_text("")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "a-file" / "cache"),
           "NUMBA_CACHE_LOCATOR_CLASSES": "UserProvidedCacheLocator"}  # fmt: skip
    result = subprocess.run(run, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == cached.stdout
    assert "no locator available" in result.stderr and "Set NUMBA_CACHE_DIR to a writable folder" in result.stderr


def test_decoys_are_the_script_s_words_in_other_orders_the_same_every_call() -> None:
    from sonic_model.captions.align import DECOYS, _shuffled_scripts

    text = "the cat sat on the mat"
    decoys = _shuffled_scripts(tokenize(text), text)
    assert len(decoys) == DECOYS and len(set(decoys)) == DECOYS and text not in decoys
    assert all(sorted(decoy.split()) == sorted(text.split()) for decoy in decoys)
    assert _shuffled_scripts(tokenize(text), text) == decoys
    assert _shuffled_scripts(tokenize(text), text, 2 * DECOYS)[:DECOYS] == decoys  # more decoys add orders
    assert _shuffled_scripts(tokenize("hello there"), "hello there") == []  # too few words to shuffle
    chinese = "我们今天学习数据分析"
    assert all(
        " " not in decoy and sorted(decoy) == sorted(chinese) for decoy in _shuffled_scripts(tokenize(chinese), chinese)
    )


@pytest.mark.parametrize(
    ("decoy_gaps", "decoys_measured", "ratio"),
    [
        ([0.3, 0.3, 0.3, 0.3, 9, 9, 9, 9], 4, 0.9 / 0.3),  # far over: four decide
        ([0.9, 0.9, 0.9, 0.9, 9, 9, 9, 9], 4, 1.0),  # far under: four decide
        ([0.62, 0.62, 0.62, 0.62, 0.5, 0.5, 0.5, 0.5], 8, 0.9 / 0.56),  # near 1.45: eight decide
        ([0.1, 0.1, 0.1, 0.1, 9, 9, 9, 9], 4, 0.9 / 0.3),  # a mean under the floor counts as the floor
    ],
)
def test_a_ratio_near_the_threshold_is_measured_again_over_more_decoys(
    monkeypatch, decoy_gaps, decoys_measured, ratio
) -> None:
    from sonic_model.captions import align

    measured = iter(decoy_gaps)
    calls = []
    monkeypatch.setattr(align, "_cost_gap", lambda synthetic, spoken: calls.append(1) or next(measured))
    text = "the course starts with a short history"
    spoken = align._VoicedPart.of(np.zeros((10, 13), np.float32), np.ones(10, bool))
    found = align._decoy_ratio(0.9, tokenize(text), text, espeak.voice_for("en"), 175, spoken)
    assert len(calls) == decoys_measured and found == pytest.approx(ratio)


def test_what_the_library_prints_while_it_speaks_stays_out_of_the_worker_s_log(capfd) -> None:
    # The Mandarin voice reading this Russian decoy prints "No envelope" for its sounds; a run of
    # wrong-language rows, each said again for its decoys, filled a log with hundreds of lines.
    espeak._HELPER.stop()  # the next helper starts with this test's captured stderr
    text = "упражнением. в Каждый заканчивается Вы можете остановить видео в любой момент."
    speech = espeak.synthesize(text, espeak.voice_for("zh"), 175)
    assert len(speech.samples) > 0
    assert "envelope" not in capfd.readouterr().err
