"""The version check of every hook into a dependency's internals (`sonic_model/internals/`).

A hook is written against one range of a dependency's releases. Outside it the hook is
switched off (its caller takes the public, slower or plainer way) and one warning says which
hook, which version and what to do; inside it the hook runs and its test
(`tests/test_internals.py`) is what notices a move within the range.
"""

from __future__ import annotations

import functools
import re
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version


class InternalsVersionWarning(UserWarning):
    """A hook into a dependency's internals was switched off: the installed version is outside its range."""


def release(text: str) -> tuple[int, ...]:
    """The numeric release of a version string: '3.8.8' -> (3, 8, 8), '6.2.3.post1' -> (6, 2, 3)."""
    match = re.match(r"\d+(\.\d+)*", text.strip())
    if match is None:
        raise ValueError(f"not a version: {text!r}")
    return tuple(int(part) for part in match.group(0).split("."))


@functools.cache
def installed_version(distribution: str) -> str | None:
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class VersionRange:
    """Releases `minimum` <= v < `below` of `distribution`, which the hooks `what` were written for."""

    distribution: str
    minimum: str
    below: str
    what: str

    def contains(self, installed: str | None) -> bool:
        return installed is not None and release(self.minimum) <= release(installed) < release(self.below)

    def supported(self) -> bool:
        """Whether the installed release is in range; the first time it is not, one warning."""
        installed = installed_version(self.distribution)
        if self.contains(installed):
            return True
        if self not in _warned:
            _warned.add(self)
            warnings.warn(
                f"{self.distribution} {installed or '(not installed)'} is outside {self.minimum} <= version < "
                f"{self.below}, the range the hooks into its internals were written for ({self.what}); they are "
                "switched off and the plain way is taken. Install a version in range, or check the hooks "
                "(sonic_model/internals/, flows/prefect_internals.py; tests/test_internals.py) and widen it.",
                InternalsVersionWarning,
                stacklevel=2,
            )
        return False


_warned: set[VersionRange] = set()
