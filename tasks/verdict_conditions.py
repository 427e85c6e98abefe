"""What a remembered verdict depends on: a probe's quarantine and a QA failure are kept by the
nightly plan (`tasks.plan`) only while these conditions hash the same (generator and version,
parameters with the seed, media limits, the probe's or QA's own source code, QA thresholds)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks.plan import PlanSettings

# The code whose verdicts a remembered quarantine is: when any of it changes (a better face
# detector, a new audio check), remembered quarantines are probed again once.
PROBE_MODULES = (
    "tasks.probe",
    "tasks.storage",
    "tasks.limits",
    "sonic_model.image",
    "sonic_model.audio",
    "sonic_model.face",
    "sonic_model.errors",
)
# The code whose verdicts a remembered QA failure is, besides the generator (whose version is in
# the conditions): QA itself (every file of sonic_model/qa/, found below) and the sync measure.
QA_MODULES = ("tasks.qa", "sonic_model.sync", "sonic_model.video_reader", "sonic_model.loudness")


def probe_code_version(modules: Iterable[str] = PROBE_MODULES, files: Iterable[str] = ()) -> str:
    """A hash of the probe's source files (found without importing them), and of `files`."""
    digest = hashlib.sha256()
    sources = []
    for name in modules:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin and os.path.isfile(spec.origin):
            sources.append((name, spec.origin))
    sources += [(os.path.basename(path), path) for path in sorted(files)]
    for name, path in sources:
        with open(path, "rb") as handle:
            digest.update(name.encode() + b"\0" + handle.read())
    return digest.hexdigest()[:16]


def qa_code_version() -> str:
    """A hash of QA's source files: `QA_MODULES` and every file of the `sonic_model.qa` package
    (listed from its folder, not imported)."""
    spec = importlib.util.find_spec("sonic_model")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "qa") if spec else ""
    files = (
        [os.path.join(folder, name) for name in os.listdir(folder) if name.endswith(".py")]
        if os.path.isdir(folder)
        else []
    )
    return probe_code_version(QA_MODULES, files)


_CODE_VERSIONS: dict[str, str] = {}


def _probe_version() -> str:
    if "probe" not in _CODE_VERSIONS:
        _CODE_VERSIONS["probe"] = probe_code_version()
    return _CODE_VERSIONS["probe"]


def _qa_version() -> str:
    if "qa" not in _CODE_VERSIONS:
        _CODE_VERSIONS["qa"] = qa_code_version()
    return _CODE_VERSIONS["qa"]


def quarantine_conditions(params: Mapping, settings: PlanSettings) -> str:
    """What a probe verdict depends on besides the inputs' bytes."""
    material = json.dumps(
        {
            "generator": settings.generator,
            "generator_version": settings.generator_version,
            "params": params,
            "limits": dict(settings.limits),
            "probe_code": _probe_version(),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def failure_conditions(conditions: str, settings: PlanSettings) -> str:
    """What a QA verdict depends on besides the inputs' bytes: the probe's conditions (generator
    and its version, parameters with the seed, limits) plus the run's QA thresholds and QA code."""
    material = json.dumps(
        {"conditions": conditions, "qa_thresholds": dict(settings.qa_thresholds), "qa_code": _qa_version()},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def with_captions(
    conditions: str,
    qa_conditions: str,
    script_sha256: str | None,
    captions_uri: str | None,
    captions_fingerprint: str | None,
) -> tuple[str, str]:
    """A row's (quarantine, QA failure) conditions with its captions sources folded in: the
    captions_uri file (URI and storage fingerprint; the probe checks it) in both, the script's hash
    in the QA one (QA checks the script against the audio). A row without captions keeps its
    conditions as they were; a captions file without a trusted fingerprint gives conditions that
    match nothing remembered (its verdict is not kept: the file is checked again)."""
    if script_sha256 is None and captions_uri is None:
        return conditions, qa_conditions
    captions_file = None
    if captions_uri is not None:
        captions_file = [captions_uri, captions_fingerprint or f"untrusted-{uuid.uuid4().hex}"]

    def folded(base: str, **extra) -> str:
        material = json.dumps({"conditions": base, **extra}, sort_keys=True)
        return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]

    quarantine = conditions if captions_file is None else folded(conditions, captions_file=captions_file)
    return quarantine, folded(qa_conditions, script_sha256=script_sha256, captions_file=captions_file)
