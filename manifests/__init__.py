"""Manifest schema, reader and example manifests (see `manifests/schema.py`)."""

from manifests.schema import (
    MANIFEST_SCHEMA,
    REQUIRED_COLUMNS,
    ManifestRow,
    manifest_from_csv,
    read_manifest,
    resolve_uri,
)
from sonic_model.errors import ManifestError

__all__ = [
    "MANIFEST_SCHEMA",
    "REQUIRED_COLUMNS",
    "ManifestError",
    "ManifestRow",
    "manifest_from_csv",
    "read_manifest",
    "resolve_uri",
]
