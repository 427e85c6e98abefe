"""Speech synthesis with eSpeak NG's library (libespeak-ng, the Debian package espeak-ng), in process.

It gives the audio and, for each word, where it starts in the audio: the aligner's reference. The
library is called through ctypes (no Python binding is packaged); it keeps global state, so calls
are serialised by one lock. No model is downloaded: the voices are the package's data.

The library is loaded afresh for every call (`_Engine._library`, 7-9 ms): it carries state from
one utterance to the next (the phase of its pitch flutter is a function-static counter in
wavegen.c's AdvanceParameters that no API resets), so the same text came out a few milliseconds
longer or shorter depending on what had been said before in the process, and one row's
script-vs-audio match moved by up to 0.17 from call to call (0.41-0.58 for one wrong script).
A QA verdict must not depend on which rows a worker rendered before. Each load keeps 3-4 KB
(eSpeak NG 1.51's Terminate does not free the current voice), so `synthesize` runs in a helper
process (`espeak_helper.py`) that is replaced every `HELPER_CALLS` calls: memory does not grow
with the number of rows a worker aligns.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import pickle
import re
import subprocess
import sys
import threading
from _ctypes import dlclose  # CPython's own: ctypes has no public way to unload a library
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sonic_model.captions.languages import language_subtags

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RATE = 1  # espeakRATE, words per minute

# BCP-47 primary subtags whose eSpeak NG voice has another name.
# Mandarin is "cmn-latn-pinyin": eSpeak NG 1.51's "cmn" turns characters into pinyin and reads it
# with English rules ("zhe four" for 这), which the aligner then matched against real Mandarin.
_VOICE_ALIASES = {
    "zh": "cmn-latn-pinyin",
    "zh-hans": "cmn-latn-pinyin",
    "zh-cn": "cmn-latn-pinyin",
    "zh-hant": "cmn-latn-pinyin",
    "zh-tw": "cmn-latn-pinyin",
    "cmn": "cmn-latn-pinyin",
    "zh-hk": "yue",
    "nb": "nb",
    "no": "nb",
    "fil": "tl",
    "iw": "he",
}


class EspeakEvent(ctypes.Structure):
    """espeak_EVENT of speak_lib.h (`id` is its union read as the 8-byte string member)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


# t_espeak_callback: (samples, sample count, events terminated by type 0) -> 0 to go on.
SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(EspeakEvent)
)


class EspeakUnavailable(RuntimeError):
    """libespeak-ng is not installed (apt-get install espeak-ng)."""


@dataclass(frozen=True)
class Synthesis:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int
    word_starts: list[tuple[int, float]]  # (character index into the text, start second)


class _Engine:
    def __init__(self) -> None:
        self.name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[int, int]] = []
        self.callback = SynthCallback(self._on_audio)  # kept referenced: the library calls it later
        self.lock = threading.Lock()
        self.voices: dict[str, str | None] = {}
        self.sample_rate = 0  # set by each load (`_library`); a missing package fails the first use

    @contextlib.contextmanager
    def _library(self) -> Iterator[ctypes.CDLL]:
        """libespeak-ng loaded and initialised with fresh state, unloaded after (module docstring).

        Only one instance may be loaded at a time (loading the same file again while it is open
        shares its state): callers hold `self.lock`."""
        try:
            lib = ctypes.CDLL(self.name)
        except OSError as error:
            raise EspeakUnavailable(
                f"libespeak-ng cannot be loaded ({error}); install the Debian package espeak-ng"
            ) from error
        try:
            self.sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None, _INITIALIZE_DONT_EXIT)
            if self.sample_rate <= 0:
                raise EspeakUnavailable("espeak_Initialize failed; is the espeak-ng-data package installed?")
            lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
            lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
            lib.espeak_SetSynthCallback(self.callback)
            yield lib
        finally:
            lib.espeak_Terminate()
            dlclose(lib._handle)

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        index = 0
        while events[index].type != _EVENT_LIST_TERMINATED:
            event = events[index]
            if event.type == _EVENT_WORD:
                self.events.append((event.text_position - 1, event.sample))
            index += 1
        return 0

    def voice_for(self, language: str) -> str | None:
        subtags = language_subtags(language)
        tag, primary = "-".join(subtags), subtags[0]
        candidates = [_VOICE_ALIASES.get(tag, tag), _VOICE_ALIASES.get(primary, primary)]
        with self.lock:
            if tag not in self.voices:  # the installed voices do not change while the process runs
                with self._library() as lib:
                    found = [c for c in candidates if lib.espeak_SetVoiceByName(c.encode()) == 0]
                self.voices[tag] = found[0] if found else None
            return self.voices[tag]

    def phoneme_words(self, text: str, voice: str) -> list[str]:
        """eSpeak NG's phoneme mnemonics for `text`, a word each; "(xx)" marks a switch to language xx."""
        buffer = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        words: list[str] = []
        with self.lock, self._library() as lib:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}; see `espeak-ng --voices`")
            while cursor.value:
                clause = lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, 0)
                words += (clause or b"").decode("utf-8", "replace").split()
        return words

    def synthesize(self, text: str, voice: str, words_per_minute: int = 175) -> Synthesis:
        data = text.encode("utf-8") + b"\0"
        with self.lock, self._library() as lib:
            if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                raise ValueError(f"eSpeak NG has no voice {voice!r}; see `espeak-ng --voices`")
            lib.espeak_SetParameter(_RATE, words_per_minute, 0)
            self.chunks, self.events = [], []
            status = lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status} for voice {voice!r}")
            chunks, events = self.chunks, self.events
        samples = (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)).astype(np.float32) / 32768.0
        return Synthesis(samples, self.sample_rate, [(pos, sample / self.sample_rate) for pos, sample in events])


_ENGINE: _Engine | None = None
_ENGINE_LOCK = threading.Lock()


def engine() -> _Engine:
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = _Engine()
        return _ENGINE


def voice_for(language: str) -> str | None:
    """The eSpeak NG voice for a BCP-47 tag (en-US -> en-us, zh-Hans -> cmn-latn-pinyin), or None if it has none."""
    return engine().voice_for(language)


# Syntheses a helper process serves before it is replaced (each leaves 3-4 KB behind in it).
HELPER_CALLS = 2000


class _HelperEnded(Exception):
    """The helper process's pipes broke during a request (it was killed or crashed)."""


class _Helper:
    """The synthesis helper process (`espeak_helper.py`): started on first use, replaced after
    `HELPER_CALLS` calls, when it has died, or in a forked child (which must not share its pipes)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.owner = 0  # the pid that started it
        self.calls = 0
        self.lock = threading.Lock()

    def synthesize(self, text: str, voice: str, words_per_minute: int) -> Synthesis:
        request = (text, voice, words_per_minute)
        with self.lock:
            try:
                kind, payload = self._exchange(request)
            except _HelperEnded:  # killed mid-call (out of memory, by hand): replaced once
                try:
                    kind, payload = self._exchange(request)
                except _HelperEnded as ended:
                    raise RuntimeError(f"the eSpeak NG helper process ended during a synthesis ({ended})") from ended
        if kind == "error":
            raise payload
        return payload

    def _exchange(self, request: tuple) -> tuple[str, object]:
        """One request answered by a running helper (started or replaced first if need be)."""
        if self.owner != os.getpid():
            self.process = None  # a forked child's copy: its parent's helper, not ours
        if self.process is None or self.process.poll() is not None or self.calls >= HELPER_CALLS:
            self._start()
        self.calls += 1
        try:
            pickle.dump(request, self.process.stdin)
            self.process.stdin.flush()
            return pickle.load(self.process.stdout)
        except (EOFError, OSError, pickle.UnpicklingError) as error:
            self.stop()
            raise _HelperEnded(repr(error)) from error

    def _start(self) -> None:
        self.stop()
        package_root = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sonic_model.captions.espeak_helper"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self.owner, self.calls = os.getpid(), 0

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or self.owner != os.getpid():
            return
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        try:
            process.wait(timeout=5)  # EOF on its stdin ends it
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_HELPER = _Helper()
atexit.register(_HELPER.stop)


def synthesize(text: str, voice: str, words_per_minute: int = 175) -> Synthesis:
    """`text` said by `voice`: the same speech for the same arguments, whatever was said before."""
    return _HELPER.synthesize(text, voice, words_per_minute)


# Characters a voice of the same language names instead of reading: eSpeak NG's Japanese voice
# has no kanji readings and says "Chinese letter" in English for each (CJK Unified Ideographs and
# Extension A). Its speech is then no reference for the real speech.
_UNREADABLE = {"ja": re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")}


def reads(text: str, voice: str) -> bool:
    """False when `voice` cannot read the characters `text` is written in (Japanese kanji).

    Only characters of the voice's own language count: a script in another language is read
    somehow (German rules for English words, Cyrillic spelled letter by letter) and left to the
    script-vs-audio match to fail.
    """
    unreadable = _UNREADABLE.get(voice.split("-")[0])
    return not (unreadable and unreadable.search(text))
