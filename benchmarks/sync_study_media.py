"""The sync study's media: presenters, espeak-ng speech in many languages, human speech, preview renders.

Used by `benchmarks/sync_study.py`. A "render" here is the preview generator's frames for one
(presenter, clip) pair, tracked with the same face mesh QA uses (`sonic_model.face`); what is
kept is the per-frame mouth opening (and the still mouth of the first frame, for the frozen
variant) in a cache folder, so a second run of the study only re-analyses. The H.264 encode is
skipped (it moves the mouth figure by noise only; QA's own path is tested in tests/test_qa.py).

Presenters (all from public-domain photographs already on the machine, no downloads):
- astronaut, hopper: the two example presenters (scikit-image's astronaut: an open-mouthed
  smile; matplotlib's Grace Hopper: glasses).
- held out: the astronaut turned ~20 degrees (a perspective warp: one side foreshortened as a
  face turned that far), Hopper turned ~20 degrees the other way, and the astronaut mirrored
  and rolled 12 degrees (another face geometry for the mesh). There is no bearded face, and no
  other photograph of a person, on this machine.

Human speech: five LibriVox sentences (tests/fixtures/human_speech, public domain), alone and
read one after another.
"""

from __future__ import annotations

import functools
import hashlib
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "manifests" / "examples" / "media"
RATE = 16_000

# (espeak-ng voice, text): the same newsreader lines in each language.
LANGUAGES: dict[str, tuple[str, str]] = {
    "en": ("en-us", "Welcome to the evening news. Today we look at the weather, the markets and a new bridge."),
    "de": ("de", "Guten Morgen. Heute sprechen wir über das Wetter, die Märkte und eine neue Brücke."),
    "fr": ("fr-fr", "Bonjour à tous. Aujourd'hui nous parlons du temps, des marchés et d'un nouveau pont."),
    "es": ("es", "Hola a todos. Hoy hablamos del tiempo, de los mercados y de un nuevo puente."),
    "it": ("it", "Buongiorno a tutti. Oggi parliamo del tempo, dei mercati e di un nuovo ponte."),
    "pt": ("pt-br", "Olá a todos. Hoje falamos do tempo, dos mercados e de uma nova ponte."),
    "nl": ("nl", "Goedemorgen allemaal. Vandaag praten we over het weer, de markten en een nieuwe brug."),
    "pl": ("pl", "Dzień dobry wszystkim. Dziś mówimy o pogodzie, o rynkach i o nowym moście."),
    "ru": ("ru", "Здравствуйте. Сегодня мы поговорим о погоде, о рынках и о новом мосте."),
    # "cmn" reads the characters' pinyin with English rules, so the study's zh speech is that, not
    # Mandarin (found by the captions work, sonic_model/captions/espeak.py); the lip-sync figures
    # need speech, not its language, and the study's cache is keyed on this voice, so it stays.
    "zh": ("cmn", "大家好。今天我们谈谈天气、市场和一座新桥。"),
    "tr": ("tr", "Herkese merhaba. Bugün hava durumu, piyasalar ve yeni köprü hakkında konuşuyoruz."),
    "sv": ("sv", "Hej alla. Idag pratar vi om vädret, marknaderna och en ny bro."),
    "hi": ("hi", "सभी को नमस्कार। आज हम मौसम, बाज़ार और नए पुल के बारे में बात करेंगे।"),
}
# Voices and speeds the passages alternate between (words per minute).
VARIANTS = (("", 150), ("+f3", 175), ("+m3", 130), ("+f2", 190))
PRESENTERS = ("astronaut", "hopper", "astronaut_turned20", "hopper_turned20", "astronaut_mirrored_rolled")
HELD_OUT = PRESENTERS[2:]


def presenter_rgb(name: str) -> np.ndarray:
    """The presenter's portrait, RGB uint8."""
    import cv2

    from sonic_model.image import load_image

    base = load_image(
        EXAMPLES / ("presenter_astronaut.jpg" if name.startswith("astronaut") else "presenter_hopper.jpg")
    )
    if name in ("astronaut", "hopper"):
        return base
    if name.endswith("turned20"):
        return _turned(base, degrees=20.0, right=name.startswith("hopper"))
    mirrored = np.ascontiguousarray(base[:, ::-1])
    h, w = mirrored.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h * 0.3), 12.0, 1.0)
    return cv2.warpAffine(mirrored, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _turned(rgb: np.ndarray, *, degrees: float, right: bool) -> np.ndarray:
    """A planar turn about the vertical axis through the face: the far side foreshortened."""
    import cv2

    h, w = rgb.shape[:2]
    squeeze = math.cos(math.radians(degrees))
    drop = 0.5 * math.sin(math.radians(degrees)) * 0.35  # far edge shorter, as perspective makes it
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    if right:
        dst = np.float32([[0, 0], [w * squeeze, h * drop], [w * squeeze, h * (1 - drop)], [0, h]])
    else:
        dst = np.float32([[w * (1 - squeeze), h * drop], [w, 0], [w, h], [w * (1 - squeeze), h * (1 - drop)]])
    matrix = cv2.getPerspectiveTransform(src, dst)
    return cv2.warpPerspective(rgb, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def passage(language: str, cache: Path) -> np.ndarray:
    """~70 s of espeak-ng speech in `language` (16 kHz float32): the line in every voice, with pauses."""
    path = cache / f"passage_{language}.npy"
    if path.exists():
        return np.load(path)
    import soundfile

    voice, text = LANGUAGES[language]
    rng = np.random.default_rng(int(hashlib.sha256(language.encode()).hexdigest()[:8], 16))
    pieces: list[np.ndarray] = [np.zeros(int(0.3 * RATE), np.float32)]
    total = 0.0
    round_ = 0
    while total < 70.0:
        suffix, speed = VARIANTS[round_ % len(VARIANTS)]
        wav = cache / f"tmp_{language}.wav"
        subprocess.run(
            ["espeak-ng", "-v", voice + suffix, "-s", str(speed), "-w", str(wav), text],
            check=True,
            capture_output=True,
        )
        samples, rate = soundfile.read(wav, dtype="float32")
        wav.unlink()
        from sonic_model.audio import resample

        samples = resample(samples, rate, RATE)
        pieces += [samples, np.zeros(int(rng.uniform(0.25, 0.8) * RATE), np.float32)]
        total += (len(samples) + len(pieces[-1])) / RATE
        round_ += 1
    audio = np.concatenate(pieces)
    audio = (audio / max(1e-6, float(np.abs(audio).max())) * 0.5).astype(np.float32)
    np.save(path, audio)
    return audio


def cut_clip(source: np.ndarray, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of `source` from a random start, 10 ms fades (a script cut from a longer read)."""
    length = int(round(seconds * RATE))
    start = int(rng.integers(0, max(1, len(source) - length)))
    clip = source[start : start + length].copy()
    if len(clip) < length:
        clip = np.concatenate([clip, np.zeros(length - len(clip), np.float32)])
    fade = min(160, length // 4)
    ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
    clip[:fade] *= ramp
    clip[-fade:] *= ramp[::-1]
    return clip


HUMAN_SPEECH = ROOT / "tests" / "fixtures" / "human_speech"
# The LibriVox sentences of tests/fixtures/human_speech (public domain, 16 kHz, 3.0-7.1 s each).
HUMAN_SENTENCES = ("0870", "0880", "0890", "0920", "0930")


@functools.cache
def human_sentence(sentence: str) -> np.ndarray:
    """One LibriVox sentence as recorded (16 kHz float32, its own leading and trailing pause)."""
    import soundfile

    samples, rate = soundfile.read(HUMAN_SPEECH / f"librivox_sense_{sentence}.flac", dtype="float32")
    if rate != RATE:
        raise ValueError(f"{sentence}: {rate} Hz, the study's human fixtures are {RATE} Hz")
    return samples


def human_audio(sentences: tuple[str, ...]) -> np.ndarray:
    """The sentences one after another, as read (each keeps its own pauses: no silence inserted)."""
    return np.concatenate([human_sentence(s) for s in sentences])


@dataclass(frozen=True)
class Clip:
    """One row of the study: a script (language, length) said by a presenter.

    `speech` is "espeak" (a cut of the language's espeak-ng passage) or "human" (the LibriVox
    `sentences`, read one after another, `seconds` their length)."""

    index: int
    presenter: str
    language: str
    seconds: float
    seed: int
    speech: str = "espeak"
    sentences: tuple[str, ...] = ()


def clip_audio(clip: Clip, cache: Path) -> np.ndarray:
    if clip.speech == "human":
        return human_audio(clip.sentences)
    rng = np.random.default_rng(clip.seed)
    return cut_clip(passage(clip.language, cache), clip.seconds, rng)


def render_key(clip: Clip) -> str:
    """The render's cache file name (espeak rows keep the name they had before human speech came)."""
    if clip.speech == "human":
        return f"{clip.index:04d}_{clip.presenter}_human-{'-'.join(clip.sentences)}_{clip.seconds:g}_{clip.seed}"
    return f"{clip.index:04d}_{clip.presenter}_{clip.language}_{clip.seconds:g}_{clip.seed}"


def render_mouth(clip: Clip, cache: Path, *, min_resolution: int = 256) -> dict:
    """Render `clip` with the preview generator and track its mouth (cached): {"mouth", "still_mouth"}."""
    path = cache / "renders" / f"{render_key(clip)}.npz"
    if path.exists():
        with np.load(path) as stored:
            return {name: stored[name] for name in stored.files}
    from sonic_model.audio import AudioClip
    from sonic_model.face import LandmarkTracker, mouth_opening
    from sonic_model.generators import RenderParams

    portrait = _portrait(clip.presenter, cache)
    audio = AudioClip(clip_audio(clip, cache))
    params = RenderParams(min_resolution=min_resolution, seed=clip.seed, motion_smoothing=0.0)
    tracker = LandmarkTracker()
    mouth, first = [], None
    for frame in _generator().frames(portrait, audio, params):
        if first is None:
            first = frame
        landmarks = tracker(frame)
        mouth.append(np.nan if landmarks is None else mouth_opening(landmarks))
    # The frozen variant: the first frame shown for the whole clip, tracked as such.
    still_tracker = LandmarkTracker()
    still = [still_tracker(first) for _ in range(3)][-1]
    result = {
        "mouth": np.asarray(mouth, np.float64),
        "still_mouth": np.float64(np.nan if still is None else mouth_opening(still)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **result)
    return result


_GENERATOR = None
_PORTRAITS: dict[str, np.ndarray] = {}


def _generator():
    global _GENERATOR
    if _GENERATOR is None:
        from sonic_model.preview.generator import PreviewGenerator

        _GENERATOR = PreviewGenerator()
    return _GENERATOR


def _portrait(name: str, cache: Path) -> np.ndarray:
    if name not in _PORTRAITS:
        _PORTRAITS[name] = presenter_rgb(name)
    return _PORTRAITS[name]
