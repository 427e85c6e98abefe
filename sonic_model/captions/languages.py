"""A row's language tag (BCP 47, as manifests write it: "en", "en-US", "pt_BR", " ZH-Hant ")."""

from __future__ import annotations


def language_subtags(language: str | None) -> list[str]:
    """The tag's subtags, lower case: "pt_BR" -> ["pt", "br"] (an underscore is a common misspelling)."""
    return (language or "").strip().lower().replace("_", "-").split("-")


def primary_language(language: str | None) -> str:
    """The tag's language subtag: "en-US" -> "en"."""
    return language_subtags(language)[0]
