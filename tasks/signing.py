"""Where signing material comes from, and signing a rendered video as part of publishing.

A run's signing configuration is a small JSON-able dict (a flow parameter, recorded in the
run's run.json; it holds paths, never keys):

    {"mode": "configured", "cert": PATH_OR_URL, "key": PATH_OR_URL}   your certificate chain + key
    {"mode": "development", "bundle": URL}       the catalog's own development certificate
    {"mode": "off"}                              no Content Credentials (--no-credentials)

`resolve_signing` turns the user's choice into one of these: `--signing-cert`/`--signing-key`,
else $SONIC_SIGNING_CERT/$SONIC_SIGNING_KEY, else the development certificate, which is
created once per catalog under `<catalog>/_credentials/` and never overwritten. The publish task
reads the files named here wherever it runs: a Dask worker on another machine reads the
development bundle from the catalog it publishes to anyway, and a configured cert/key from the
same path on every worker (a mounted secret) or from a URL all of them can read.

No Prefect here (the command line imports it for its options).
"""

from __future__ import annotations

import hashlib
import os
import threading
import uuid
from pathlib import Path
from typing import Any

from sonic_model.errors import ParameterError

CERT_ENV = "SONIC_SIGNING_CERT"
KEY_ENV = "SONIC_SIGNING_KEY"
# Where render-one / calibrate keep their development certificate (no catalog there).
DEV_CREDENTIALS_ENV = "SONIC_DEV_CREDENTIALS_DIR"
CREDENTIALS_DIR = "_credentials"
DEVELOPMENT_BUNDLE = "development-signer.pem"
OFF, CONFIGURED, DEVELOPMENT = "off", "configured", "development"
UNTRUSTED_NOTE = (
    "verifiers do not trust a development certificate (they show the signer as unknown); "
    f"give --signing-cert/--signing-key (or ${CERT_ENV}/${KEY_ENV}) for production"
)


# --- the command line -----------------------------------------------------------------------------


def add_signing_options(parser) -> None:
    """`--signing-cert`, `--signing-key`, `--no-credentials` (render, render-one, calibrate)."""
    group = parser.add_argument_group("content credentials (C2PA)")
    group.add_argument(
        "--signing-cert",
        metavar="PEM",
        default=None,
        help=f"certificate chain to sign with, signer first (path or URL; default ${CERT_ENV}; "
        "neither: a development certificate that verifiers do not trust)",
    )
    group.add_argument(
        "--signing-key",
        metavar="PEM",
        default=None,
        help=f"the signer's private key, unencrypted PEM (path or URL; default ${KEY_ENV})",
    )
    group.add_argument("--no-credentials", action="store_true", help="do not sign: videos carry no Content Credentials")


def signing_from_args(args, environ: dict | None = None) -> dict:
    """The signing choice of a command line (not yet resolved to a development bundle)."""
    if getattr(args, "no_credentials", False):
        if args.signing_cert or args.signing_key:
            raise ParameterError("--no-credentials contradicts --signing-cert/--signing-key; give one or the other")
        return {"mode": OFF}
    return choose_signing(args.signing_cert, args.signing_key, environ)


def choose_signing(cert: str | None, key: str | None, environ: dict | None = None) -> dict:
    """Explicit cert + key, else the environment's, else the development certificate."""
    environ = os.environ if environ is None else environ
    origin = "--signing-cert/--signing-key"
    if not cert and not key:
        cert, key, origin = environ.get(CERT_ENV) or None, environ.get(KEY_ENV) or None, f"${CERT_ENV}/${KEY_ENV}"
    if cert and key:
        return {"mode": CONFIGURED, "cert": str(cert), "key": str(key)}
    if cert or key:
        raise ParameterError(f"{origin}: give both the certificate chain and its private key, not only one")
    return {"mode": DEVELOPMENT}


# --- resolving and loading ------------------------------------------------------------------------


def resolve_signing(signing: dict | None, folder_url: str) -> dict:
    """A complete signing configuration for a run writing under `folder_url` (a catalog).

    None chooses from the environment (deployments). Development material is created here,
    once per folder, so every row of the run (on any worker) signs with the same certificate.
    Configured material is only named here: it is read where publishing runs (`describe_signing`
    checks it where it can).
    """
    signing = dict(signing) if signing else choose_signing(None, None)
    mode = signing.get("mode")
    if mode == OFF:
        return {"mode": OFF}
    if mode == CONFIGURED:
        if not signing.get("cert") or not signing.get("key"):
            raise ParameterError("signing mode 'configured' needs both 'cert' and 'key'")
        return {"mode": CONFIGURED, "cert": signing["cert"], "key": signing["key"]}
    if mode == DEVELOPMENT:
        bundle = signing.get("bundle") or ensure_development_bundle(folder_url)
        return {"mode": DEVELOPMENT, "bundle": bundle}
    raise ParameterError(f"unknown signing mode {mode!r}; use 'configured', 'development' or 'off'")


def describe_signing(signing: dict, *, required: bool = True) -> dict:
    """For the run summary and run.json: the mode, the signer, and the trust note.

    Reads the material, so an unusable key fails the run before any row. `required=False` (a
    cluster run, where the workers may hold a key this machine does not) tolerates material
    that cannot be read here: the rows then fail on the workers if it is missing there too.
    """
    from sonic_model.errors import SigningMaterialError

    if signing.get("mode") == OFF:
        return {"mode": OFF, "note": "Content Credentials are off (--no-credentials): videos are not signed"}
    try:
        material = material_for(signing)
    except SigningMaterialError as exc:
        if required or signing.get("mode") != CONFIGURED:
            raise
        return {
            "mode": CONFIGURED,
            "signer": None,
            "cert": signing["cert"],
            "note": f"not readable where the flow runs ({exc}); the workers read it themselves",
        }
    described = {"mode": signing["mode"], "signer": material.signer_name, "alg": material.alg}
    if signing["mode"] == DEVELOPMENT:
        described.update(bundle=signing["bundle"], note=UNTRUSTED_NOTE)
    return described


_bundle_cache: dict[str, Any] = {}
_bundle_lock = threading.Lock()


def material_for(signing: dict):
    """The `SigningMaterial` a configuration names, read where this code runs (None when off)."""
    from sonic_model.signing_material import load_signing_material, split_bundle

    mode = signing.get("mode")
    if mode == OFF:
        return None
    if mode == DEVELOPMENT:
        url = signing["bundle"]
        with _bundle_lock:  # a development bundle is never overwritten: read it once per process
            if url not in _bundle_cache:
                _bundle_cache[url] = split_bundle(
                    _read(url, "development certificate"), origin=f"development certificate {url}", development=True
                )
            return _bundle_cache[url]
    cert, key = signing["cert"], signing["key"]
    return load_signing_material(
        _read(cert, "signing certificate"), _read(key, "signing key"), origin=f"certificate {cert}"
    )


def _read(url: str, what: str) -> bytes:
    import fsspec

    from sonic_model.errors import SigningMaterialError

    try:
        with fsspec.open(str(url), "rb") as handle:
            return handle.read(1 << 20)
    except FileNotFoundError:
        raise SigningMaterialError(
            f"{what} {url} not found on this machine ({os.uname().nodename}); on a cluster every worker must "
            "read it at the same path (a mounted secret) or from a URL they can all reach"
        ) from None
    except (OSError, ValueError) as exc:
        raise SigningMaterialError(f"cannot read {what} {url}: {exc}") from None


def ensure_development_bundle(folder_url: str) -> str:
    """The URL of `<folder>/_credentials/development-signer.pem`, created if there is none.

    One PEM object holds the key and its chain, so they can never come from two different
    creations. Never overwritten: on a local disk the new file is linked into place only if the
    name is free (atomic, mode 0600); on object stores, which have no "create if absent" through
    fsspec, it is moved into place only if absent, leaving a window of milliseconds in which two
    runs starting on a new catalog at the same instant could both write (each video carries
    its certificate, so both runs' videos stay verifiable).
    """
    from fsspec.core import url_to_fs

    from sonic_model.signing_material import create_development_credentials

    fs, root = url_to_fs(str(folder_url))
    local = "file" in (fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,))
    root = os.path.abspath(root) if local else root.rstrip("/")
    folder = f"{root}/{CREDENTIALS_DIR}"
    final = f"{folder}/{DEVELOPMENT_BUNDLE}"
    uri = final if local else fs.unstrip_protocol(final)
    if fs.exists(final):
        return uri
    label = root.rstrip("/").rsplit("/", 1)[-1] or "catalog"
    bundle = create_development_credentials(label=label)
    if local:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        temporary = f"{folder}/.{DEVELOPMENT_BUNDLE}.partial-{uuid.uuid4().hex[:12]}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(bundle)
            try:
                os.link(temporary, final)  # fails if the name exists: never overwrites
            except FileExistsError:
                pass
        finally:
            os.remove(temporary)
        return uri
    fs.makedirs(folder, exist_ok=True)
    temporary = f"{folder}/.{DEVELOPMENT_BUNDLE}.partial-{uuid.uuid4().hex[:12]}"
    try:
        fs.pipe_file(temporary, bundle)
        if not fs.exists(final):
            fs.mv(temporary, final)
    finally:
        if fs.exists(temporary):
            fs.rm(temporary)
    return uri


def user_development_folder(environ: dict | None = None) -> str:
    """Where commands without a catalog keep their development certificate: outside any checkout."""
    environ = os.environ if environ is None else environ
    if environ.get(DEV_CREDENTIALS_ENV):
        return environ[DEV_CREDENTIALS_ENV]
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "sonic-catalog")


def material_for_local_command(args):
    """The `SigningMaterial` of render-one / calibrate (None with --no-credentials).

    With nothing configured: the user's development certificate, created once under
    `user_development_folder()` (never inside a checkout, never overwritten).
    """
    from sonic_model.errors import SigningMaterialError

    signing = signing_from_args(args)
    if signing["mode"] == DEVELOPMENT:
        folder = user_development_folder()
        try:
            signing = {"mode": DEVELOPMENT, "bundle": ensure_development_bundle(folder)}
        except OSError as exc:
            raise SigningMaterialError(
                f"cannot create the development certificate in {folder}: {exc.strerror or exc}; set "
                f"${DEV_CREDENTIALS_ENV} to a writable folder, give --signing-cert/--signing-key, or --no-credentials"
            ) from None
    return material_for(signing)


# --- signing a rendered video -----------------------------------------------------------------------


def sign_rendered(rendered, signing: dict | None, captions_vtt: str | None = None) -> tuple[str, dict | None]:
    """Sign a rendered row's video for publishing: (file to upload, the sidecar's credentials record).

    The signed copy is written beside the render, in its scratch folder (removed with it), and
    checked to validate before it is returned. With signing off (or None) the render itself and
    None come back.
    """
    if not signing or signing.get("mode") == OFF:
        return rendered.video_path, None
    return _sign_one(rendered, material_for(signing), rendered.video_path, "master", captions_vtt)


def sign_renditions(
    rendered, signing: dict | None, captions_vtt: str | None = None
) -> dict[str, tuple[str, dict | None]]:
    """Each rendition of a rendered row signed on its own, as `sign_rendered` signs the master:
    {rendition name: (file to upload, its credentials record)}."""
    if not rendered.renditions:
        return {}
    if not signing or signing.get("mode") == OFF:
        return {r["name"]: (r["path"], None) for r in rendered.renditions}
    material = material_for(signing)
    return {r["name"]: _sign_one(rendered, material, r["path"], r["name"], captions_vtt) for r in rendered.renditions}


def _sign_one(
    rendered, material, video_path: str | Path, rendition: str, captions_vtt: str | None = None
) -> tuple[str, dict]:
    from sonic_model.credentials import IngredientHash, creation_manifest, sign_video

    info = rendered.info
    stem = info.key_prefix.rsplit("/", 1)[-1]
    ingredients = [
        IngredientHash.of("portrait", rendered.portrait_uri, rendered.portrait_sha256),
        IngredientHash.of("script audio", rendered.audio_uri, rendered.audio_sha256),
    ]
    if captions_vtt is not None:  # the published .vtt, byte for byte (its track is in the MP4)
        digest = hashlib.sha256(captions_vtt.encode("utf-8")).hexdigest()
        ingredients.append(IngredientHash("captions", f"{stem}.vtt", digest, "text/vtt"))
    manifest = creation_manifest(
        title=f"{stem}.mp4" if rendition == "master" else f"{stem}.{rendition}.mp4",
        generator=rendered.generator,
        generator_version=rendered.generator_version,
        params=rendered.params,
        ingredients=ingredients,
        facts={
            "row_id": info.row_id,
            "language": info.language,
            "collection": info.collection,
            "item_id": info.item_id,
            "consent_ref": info.consent_ref,
            "content_key": rendered.content_key,
            "rendition": rendition,
        },
    )
    source = Path(video_path)
    signed = sign_video(source, source.with_name(source.stem + ".signed.mp4"), manifest, material)
    return signed.path, signed.as_record()


def sign_file_in_place(path: str | Path, manifest: dict, material, *, parent: str | Path | None = None) -> dict:
    """Sign a local file and move the signed copy onto it (render-one, calibrate); its record."""
    from sonic_model.credentials import sign_video

    path = Path(path)
    temporary = path.with_name(f".{path.stem}.signing-{uuid.uuid4().hex[:8]}.mp4")
    try:
        signed = sign_video(path, temporary, manifest, material, parent=parent)
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()
    return signed.as_record()
