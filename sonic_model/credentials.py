"""Content Credentials (C2PA): sign a rendered video with a manifest, read and check one back.

A C2PA manifest is embedded in the MP4 (a `uuid` box), bound to the file's bytes by a hash
(`c2pa.hash.bmff`) and signed with an X.509 certificate, so any C2PA reader (verification
sites, platforms, `sonic-catalog verify`) can tell what made the video and whether the file
was changed since. What we claim for a rendered video:

- the action `c2pa.created` with IPTC digital source type `trainedAlgorithmicMedia` (made by a
  trained model) and the generator's name and version as the software agent;
- the portrait and the script audio as `inputTo` ingredients, described by name, format and
  SHA-256 only: neither file (nor a thumbnail of the photo) is embedded;
- our own assertion `org.sonic-catalog.render`: row id, language, consent reference, content
  key, the generator's parameters and the AI disclosure text.

An edit (`calibrate` re-timing the sound) is signed as `c2pa.edited` with the file it edited as
the `parentOf` ingredient, whose own manifest (if any) is carried along as history.

The signing key and certificate chain always come from the caller (configuration, never the
manifest), as a `SigningMaterial` (`sonic_model/signing_material.py`, which also makes the
throwaway development CA + signer pair for catalogs with none configured).

Built on c2pa-python (the Content Authenticity Initiative's bindings to c2pa-rs) and
`cryptography`; no Prefect here.
"""

from __future__ import annotations

import json
import mimetypes
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sonic_model import __version__ as SONIC_CATALOG_VERSION
from sonic_model.digest import sha256_file
from sonic_model.errors import CredentialsError, InputError
from sonic_model.signing_material import SigningMaterial

IPTC_TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
RENDER_ASSERTION = "org.sonic-catalog.render"
EDIT_ASSERTION = "org.sonic-catalog.edit"
CLAIM_GENERATOR = "sonic-catalog"
VIDEO_FORMAT = "video/mp4"

# Reader verdicts (what `verify` exits with: 0, 1, 2).
VALID, INVALID, NONE = "valid", "invalid", "none"
# Trust is a separate question from integrity: an untrusted signer still proves the bytes are
# the ones it signed. These codes say only "not on a trust list" / "could not ask OCSP".
TRUST_ONLY_CODES = frozenset({"signingCredential.untrusted"})

# Without thumbnails: c2pa-rs would otherwise store a thumbnail of every image ingredient,
# i.e. a copy of the presenter's photo inside the video's manifest.
_BUILDER_SETTINGS = {"builder": {"thumbnail": {"enabled": False}}}


# --- what a video claims ------------------------------------------------------------------------


@dataclass(frozen=True)
class IngredientHash:
    """An input described by name, format and SHA-256 only (the file itself is not embedded)."""

    role: str  # "portrait", "script audio", ...
    title: str  # a file name, never a full URI (which could name private storage)
    sha256: str
    format: str = "application/octet-stream"

    @classmethod
    def of(cls, role: str, uri: str, sha256: str) -> IngredientHash:
        title = str(uri).rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or role
        return cls(role, title, sha256, mimetypes.guess_type(title)[0] or "application/octet-stream")

    def definition(self, instance: str) -> dict:
        return {
            "title": self.title,
            "format": self.format,
            "relationship": "inputTo",
            "instance_id": instance,
            "description": self.role,
            "metadata": {"org.sonic-catalog.sha256": self.sha256},
        }


def creation_manifest(
    *, title: str, generator: str, generator_version: str, params: dict, ingredients: list[IngredientHash], facts: dict
) -> dict:
    """The manifest definition of a rendered video.

    `facts`: our assertion's content besides the generator (row_id, language, consent_ref,
    content_key, ...). The `c2pa.created` action names its ingredients (`ingredientIds`).
    """
    from sonic_model.encode import AI_DISCLOSURE

    instances = [f"sonic-catalog:{item.role.replace(' ', '-')}:{item.sha256}" for item in ingredients]
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": SONIC_CATALOG_VERSION}],
        "title": title,
        "format": VIDEO_FORMAT,
        "ingredients": [item.definition(instance) for item, instance in zip(ingredients, instances, strict=False)],
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": IPTC_TRAINED_ALGORITHMIC_MEDIA,
                            "softwareAgent": {"name": generator, "version": generator_version},
                            "description": AI_DISCLOSURE,
                            "parameters": {"ingredientIds": instances},
                        }
                    ]
                },
            },
            {
                "label": RENDER_ASSERTION,
                "data": {
                    **facts,
                    "generator": {"name": generator, "version": generator_version, "params": params},
                    "inputs": {item.role: {"title": item.title, "sha256": item.sha256} for item in ingredients},
                    "ai_generated": True,
                    "disclosure": AI_DISCLOSURE,
                },
            },
        ],
    }


def edit_manifest(*, title: str, software: str, description: str, parameters: dict) -> dict:
    """The manifest definition of an edit (`c2pa.edited`); the parent is added when signing."""
    return {
        "claim_generator_info": [{"name": CLAIM_GENERATOR, "version": SONIC_CATALOG_VERSION}],
        "title": title,
        "format": VIDEO_FORMAT,
        "assertions": [
            {
                "label": "c2pa.actions.v2",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.edited",
                            "softwareAgent": {"name": software, "version": SONIC_CATALOG_VERSION},
                            "description": description,
                            "parameters": parameters,
                        }
                    ]
                },
            },
            {"label": EDIT_ASSERTION, "data": {"description": description, "parameters": parameters}},
        ],
    }


# --- signing --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedVideo:
    """A signed file and what a sidecar records about its credentials."""

    path: str
    manifest_label: str
    signer: str
    alg: str
    development: bool
    validation_state: str
    seconds: float

    def as_record(self) -> dict:
        record = asdict(self)
        record.pop("path")
        record["standard"] = "C2PA"
        return record


def sign_video(
    source: str | Path, dest: str | Path, manifest: dict, material: SigningMaterial, *, parent: str | Path | None = None
) -> SignedVideo:
    """Write `source` to `dest` with `manifest` embedded and signed; check it validates.

    `parent`: the file this one was edited from (a `parentOf` ingredient; its own credentials,
    if it has any, go along as history). `dest` is written in place: pass a scratch name and
    move it afterwards. Raises `CredentialsError` if c2pa refuses, or if the signed file does not
    read back as valid (its signature and hash binding; trust is not required).
    """
    import time

    import c2pa

    started = time.perf_counter()
    source, dest = Path(source), Path(dest)
    try:
        with c2pa.Context.from_dict(_BUILDER_SETTINGS) as context, c2pa.Builder(manifest, context=context) as builder:
            if parent is not None:
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)  # adds c2pa.opened on the parent
                with open(parent, "rb") as parent_file:
                    builder.add_ingredient(
                        {
                            "title": Path(parent).name,
                            "relationship": "parentOf",
                            "format": VIDEO_FORMAT,
                            "metadata": {"org.sonic-catalog.sha256": sha256_file(parent)},
                        },
                        VIDEO_FORMAT,
                        parent_file,
                    )
            with material.c2pa_signer() as signer, open(source, "rb") as src, open(dest, "w+b") as dst:
                builder.sign(signer, VIDEO_FORMAT, src, dst)
    except c2pa.C2paError as exc:
        _remove(dest)
        raise CredentialsError(f"signing {source.name} failed: {exc}") from None
    except OSError as exc:
        _remove(dest)
        raise CredentialsError(f"signing {source.name} failed: {exc.strerror or exc}") from None
    report = read_credentials(dest)
    if report.status != VALID:
        _remove(dest)
        problems = "; ".join(f"{f['code']}: {f.get('explanation', '')}" for f in report.problems) or report.status
        raise CredentialsError(f"the signed {source.name} does not validate ({problems}); nothing was published")
    return SignedVideo(
        str(dest),
        report.manifest_label or "",
        material.signer_name,
        material.alg,
        material.development,
        report.validation_state or "",
        round(time.perf_counter() - started, 4),
    )


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


# --- reading and checking -------------------------------------------------------------------------


@dataclass
class CredentialsReport:
    """What a file's Content Credentials claim, and whether they hold.

    `status`: `valid` (signature and hash binding hold; the signer may still be untrusted),
    `invalid` (tampered, or the manifest is broken), `none` (no credentials in the file).
    `trusted`: the signer chains to a trust anchor the reader was given.
    """

    status: str
    validation_state: str | None = None
    trusted: bool = False
    manifest_label: str | None = None
    title: str | None = None
    claim_generator: str | None = None
    signer: dict = field(default_factory=dict)
    actions: list[dict] = field(default_factory=list)
    ingredients: list[dict] = field(default_factory=list)
    sonic: dict | None = None
    ai_generated: bool = False
    history: list[str] = field(default_factory=list)
    problems: list[dict] = field(default_factory=list)
    trust_notes: list[dict] = field(default_factory=list)
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def read_credentials(
    source: str | Path | BinaryIO, *, trust_anchors_pem: bytes | str | None = None
) -> CredentialsReport:
    """Read and validate the C2PA manifest of an MP4 (a path or a readable, seekable file object).

    `trust_anchors_pem`: CA certificates to trust (e.g. a catalog's development CA, or your
    organisation's); without them only the signature and binding are checked.
    Raises `InputError` for a file that is not a media file c2pa can read.
    """
    import c2pa

    settings: dict[str, Any] = {}
    if trust_anchors_pem:
        anchors = trust_anchors_pem.decode("ascii") if isinstance(trust_anchors_pem, bytes) else trust_anchors_pem
        settings = {"verify": {"verify_trust": True}, "trust": {"user_anchors": anchors}}
    opened = None
    try:
        if isinstance(source, (str, Path)):
            opened = source = open(source, "rb")
        _check_mp4(source)
        with c2pa.Context.from_dict(settings) as context:
            try:
                reader = c2pa.Reader(VIDEO_FORMAT, source, None, context)
            except c2pa.C2paError.ManifestNotFound:
                return CredentialsReport(status=NONE)
            except c2pa.C2paError.NotSupported as exc:
                raise InputError(f"not a media file C2PA can read: {exc}") from None
            except c2pa.C2paError as exc:
                # A manifest is there but cannot be parsed or verified at all: broken or forged.
                return CredentialsReport(
                    status=INVALID, error=str(exc), problems=[{"code": type(exc).__name__, "explanation": str(exc)}]
                )
            with reader:
                return _report(json.loads(reader.json()))
    except OSError as exc:
        raise InputError(f"cannot read {getattr(source, 'name', source)}: {exc.strerror or exc}") from None
    finally:
        if opened is not None:
            opened.close()


# Top-level boxes an MP4 / QuickTime file can start with.
_FIRST_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pdin", b"styp"}


def _check_mp4(handle: BinaryIO) -> None:
    start = handle.tell()
    head = handle.read(12)
    handle.seek(start)
    if len(head) < 8 or head[4:8] not in _FIRST_BOXES:
        name = getattr(handle, "name", None) or getattr(handle, "path", None) or "the file"
        raise InputError(f"{name} is not an MP4 (ISO media) file; Content Credentials are read from MP4 videos")


def _report(store: dict) -> CredentialsReport:
    label = store.get("active_manifest")
    manifests = store.get("manifests", {})
    manifest = manifests.get(label, {})
    state = store.get("validation_state")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = [{"code": f.get("code"), "explanation": f.get("explanation")} for f in results.get("failure", [])]
    if not results and store.get("validation_status"):
        failures = [{"code": f.get("code"), "explanation": f.get("explanation")} for f in store["validation_status"]]
    problems = [f for f in failures if f["code"] not in TRUST_ONLY_CODES]
    trust_notes = [f for f in failures if f["code"] in TRUST_ONLY_CODES]
    actions = []
    sonic = None
    for assertion in manifest.get("assertions", []):
        if assertion.get("label", "").startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                agent = action.get("softwareAgent")
                actions.append(
                    {
                        "action": action.get("action"),
                        "digitalSourceType": action.get("digitalSourceType"),
                        "softwareAgent": agent if isinstance(agent, dict) else ({"name": agent} if agent else None),
                        "description": action.get("description"),
                        "parameters": {k: v for k, v in (action.get("parameters") or {}).items() if k != "ingredients"}
                        or None,
                    }
                )
        elif assertion.get("label") in (RENDER_ASSERTION, EDIT_ASSERTION):
            sonic = {"label": assertion["label"], **assertion.get("data", {})}
    ingredients = [
        {
            "title": item.get("title"),
            "format": item.get("format"),
            "relationship": item.get("relationship"),
            "description": item.get("description"),
            "sha256": (item.get("metadata") or {}).get("org.sonic-catalog.sha256"),
            "manifest": item.get("active_manifest"),
        }
        for item in manifest.get("ingredients", [])
    ]
    generator = (manifest.get("claim_generator_info") or [{}])[0]
    signature = manifest.get("signature_info") or {}
    # AI-generated if this manifest or any earlier one in the file's history says so.
    source_types = {
        action.get("digitalSourceType")
        for m in manifests.values()
        for a in m.get("assertions", [])
        if a.get("label", "").startswith("c2pa.actions")
        for action in a.get("data", {}).get("actions", [])
    }
    return CredentialsReport(
        status=INVALID if state == "Invalid" or problems else VALID,
        validation_state=state,
        trusted=state == "Trusted",
        manifest_label=label,
        title=manifest.get("title"),
        claim_generator=" ".join(str(generator[k]) for k in ("name", "version") if generator.get(k)) or None,
        signer={
            "common_name": signature.get("common_name"),
            "issuer": signature.get("issuer"),
            "alg": signature.get("alg"),
            "time": signature.get("time"),
        },
        actions=actions,
        ingredients=ingredients,
        sonic=sonic,
        ai_generated=IPTC_TRAINED_ALGORITHMIC_MEDIA in source_types,
        history=[name for name in manifests if name != label],
        problems=problems,
        trust_notes=trust_notes,
    )
