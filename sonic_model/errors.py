"""Errors a user can act on: every error class of the project, in one place.

Every error raised for bad input or a bad environment is a `SonicCatalogError` whose message
is one line saying what was wrong and what to do. Callers (CLI, Prefect tasks) print or record
that line as the row's reason; they never show a traceback for these. Where code has to tell
one reason from another, it checks the class, never the message: so each reason that code
branches on has a class of its own here.

    SonicCatalogError
    ├── InputError                  a row's input or a parameter is unusable
    │   ├── ImageError              the portrait cannot be read (or is too large)
    │   ├── NoFaceError             no usable face in the portrait
    │   │   └── AmbiguousFaceError  two faces of similar size: which one is the presenter?
    │   ├── AudioError              the audio cannot be decoded or is out of the length limits
    │   │   ├── AudioTooShortError  shorter than the minimum length
    │   │   ├── NoSpeechError       decodes, but holds no speech
    │   │   ├── DurationMismatchError  the declared duration_s is off
    │   │   └── TruncatedAudioError the header promises much more audio than decodes
    │   ├── MediaErrors             several of a row's media are unusable at once (`.errors`)
    │   ├── ParameterError          a parameter is out of its allowed range
    │   ├── CaptionsError           a row's script or captions file is unusable
    │   ├── UriNotAllowedError      a URI's scheme, location or form is not allowed
    │   ├── MediaNotFoundError      the object a URI names does not exist
    │   ├── MediaTooLargeError      the object is over the file-size limit
    │   └── StorageReadError        the object exists but cannot be read
    ├── ManifestError               the manifest as a whole is unusable
    ├── RunNotFoundError            the catalog has no such run
    ├── RenderFailed                a render kept failing for reasons other than its inputs
    ├── OutputError                 the output cannot be written
    └── WeightsError                model weights are missing or do not match the release
"""

from __future__ import annotations

from collections.abc import Iterable


class SonicCatalogError(Exception):
    """Base class: `str(error)` is a single user-facing line."""


# --- a row's input ---------------------------------------------------------------------------


class InputError(SonicCatalogError):
    """An input file or parameter is unusable."""


class ImageError(InputError):
    """The portrait cannot be read as an image (or is too large)."""


class NoFaceError(InputError):
    """No usable face was found in an image."""


class AmbiguousFaceError(NoFaceError):
    """Two or more faces of similar size: the subject cannot be chosen safely."""


class AudioError(InputError):
    """The audio cannot be decoded, is empty, or is out of the allowed length."""


class AudioTooShortError(AudioError):
    """The audio decodes but is shorter than the minimum length."""


class NoSpeechError(AudioError):
    """The audio decodes but holds no speech."""


class DurationMismatchError(AudioError):
    """The declared `duration_s` does not match the decoded audio."""


class TruncatedAudioError(AudioError):
    """The file's header promises much more audio than decodes: the file was cut short."""


class MediaErrors(InputError):
    """Several of one row's media are unusable at once (the portrait and the audio).

    `errors` holds each one's error; the message is their messages joined by '; ', the way a
    row's reasons are written out.
    """

    def __init__(self, errors: Iterable[InputError]) -> None:
        self.errors: tuple[InputError, ...] = tuple(errors)
        super().__init__("; ".join(str(error) for error in self.errors))

    def __reduce__(self):  # pickles across processes (a Dask worker) with its parts
        return (type(self), (self.errors,))


class ParameterError(InputError):
    """A generation parameter is out of its allowed range."""


class CaptionsError(InputError):
    """A row's captions file does not parse or breaks a rule (order, overlap, past the audio's end)."""


# --- storage (tasks/storage.py) --------------------------------------------------------------


class UriNotAllowedError(InputError):
    """A URI's scheme, location or form is not allowed."""


class MediaNotFoundError(InputError):
    """The object a URI names does not exist."""


class MediaTooLargeError(InputError):
    """The object is over the file-size limit."""


class StorageReadError(InputError):
    """The object exists but cannot be read."""


# --- a run -----------------------------------------------------------------------------------


class ManifestError(SonicCatalogError):
    """The manifest as a whole is unusable (nothing in it can be rendered)."""


class RunNotFoundError(SonicCatalogError):
    """The catalog has no such run (or no runs at all)."""


class RenderFailed(SonicCatalogError):
    """A render kept failing for reasons other than its inputs, through every retry (or ran
    past the per-row timeout). Raised by the catalog flow, never inside the render task, so
    it does not count as a bad input there (`tasks.render` retries everything else)."""


class OutputError(SonicCatalogError):
    """The output cannot be written."""


class CaptionFontError(OutputError):
    """The font captions are to be burned in with is not installed (the message names the package)."""


class WeightsError(SonicCatalogError):
    """Model weights are missing or do not match the expected release."""


class GeneratorUnavailableError(SonicCatalogError):
    """A registered generator cannot be loaded here (its code or a dependency fails to import)."""


# --- Content Credentials ---------------------------------------------------------------------


class CredentialsError(SonicCatalogError):
    """Signing failed, or the signed file did not validate."""


class SigningMaterialError(CredentialsError):
    """The signing certificate chain or private key is unusable."""
