"""Errors a user can act on.

Every error raised for bad input or a bad environment is a `SonicCatalogError` whose message
is one line saying what was wrong and what to do. Callers (CLI, Prefect tasks) print or record
that line as the row's reason; they never show a traceback for these.
"""


class SonicCatalogError(Exception):
    """Base class: `str(error)` is a single user-facing line."""


class InputError(SonicCatalogError):
    """An input file or parameter is unusable."""


class ImageError(InputError):
    """The portrait cannot be read as an image (or is too large)."""


class NoFaceError(InputError):
    """No usable face was found in an image."""


class AudioError(InputError):
    """The audio cannot be decoded, is empty, or is out of the allowed length."""


class ParameterError(InputError):
    """A generation parameter is out of its allowed range."""


class OutputError(SonicCatalogError):
    """The output cannot be written."""


class WeightsError(SonicCatalogError):
    """Model weights are missing or do not match the expected release."""


class GeneratorUnavailableError(SonicCatalogError):
    """A registered generator cannot be loaded here (its code or a dependency fails to import)."""
