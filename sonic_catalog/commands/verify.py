"""`sonic-catalog verify`: read a video's Content Credentials (C2PA), say what they claim and whether they hold.

Exit codes: 0 valid (the signature and the hash binding hold: the bytes are the ones signed),
1 invalid (tampered: the bytes changed after signing, or a broken/forged manifest), 2 none
(the file carries no credentials, e.g. re-muxed or never signed), 3 not a readable video
(missing, unreadable, or not an MP4), 4 the check could not be made (unreadable
--trust-anchors). `--json` prints one JSON object in every case. Trust in the signer is
reported, not part of the exit code: a development certificate is valid but not trusted;
`--trust-anchors` names CA certificates to trust (e.g. a catalog's development CA).
"""

from __future__ import annotations

import argparse
import json

from sonic_model.errors import InputError

EXIT_VALID, EXIT_INVALID, EXIT_NONE, EXIT_NOT_A_VIDEO, EXIT_CANNOT_CHECK = 0, 1, 2, 3, 4
MAX_VIDEO_BYTES = 4 << 30


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "verify",
        help="check a video's Content Credentials (C2PA): what they claim, and whether signature and binding hold",
        description=__doc__.split("\n", 1)[1].strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "video", metavar="PATH_OR_URL", help="an MP4: local path or fsspec URL (s3://, gs://, memory://, https://)"
    )
    parser.add_argument(
        "--trust-anchors",
        metavar="PEM",
        default=None,
        help="CA certificates (PEM, path or URL) whose signers count as trusted, "
        "e.g. <catalog>/_credentials/development-signer.pem",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object (the full report)")
    return parser


def run(args: argparse.Namespace) -> int:
    from sonic_model.credentials import NONE, VALID, read_credentials

    try:
        anchors = _read(args.trust_anchors, "trust anchors") if args.trust_anchors else None
        if anchors is not None:
            anchors = _certificates_only(anchors)
    except InputError as exc:
        return _failed(args, EXIT_CANNOT_CHECK, "cannot_check", str(exc))
    try:
        with _open(args.video) as handle:
            report = read_credentials(handle, trust_anchors_pem=anchors)
    except InputError as exc:
        return _failed(args, EXIT_NOT_A_VIDEO, "not_a_video", f"not a readable video: {exc}")
    code = EXIT_VALID if report.status == VALID else EXIT_NONE if report.status == NONE else EXIT_INVALID
    if args.json:
        print(json.dumps({"video": _shown(args.video), "exit_code": code, **report.as_dict()}, indent=2))
        return code
    print(describe(_shown(args.video), report))
    return code


def _failed(args: argparse.Namespace, code: int, status: str, message: str) -> int:
    """No verdict on credentials: say why, as JSON when asked (a caller parsing stdout always gets an object)."""
    import sys

    if args.json:
        print(
            json.dumps({"video": _shown(args.video), "exit_code": code, "status": status, "error": message}, indent=2)
        )
    else:
        print(f"error: {message}", file=sys.stderr)
    return code


def describe(name: str, report) -> str:
    """The report as a person reads it: the verdict first, then the claims."""
    if report.status == "none":
        return (
            f"{name}: no Content Credentials (no C2PA manifest in the file: never signed, or re-muxed/re-encoded since)"
        )
    lines = []
    if report.status == "valid":
        trust = "trusted signer" if report.trusted else "signer NOT on a trust list"
        lines.append(f"{name}: Content Credentials VALID: the signature and the hash binding hold ({trust})")
    else:
        lines.append(
            f"{name}: Content Credentials INVALID: the file was changed after signing, or the manifest is broken"
        )
        for problem in report.problems:
            lines.append(f"  ! {problem['code']}: {problem.get('explanation') or ''}".rstrip())
    if not report.manifest_label:
        return "\n".join(lines)
    signer = report.signer or {}
    issuer, alg = signer.get("issuer") or "?", signer.get("alg") or "?"
    lines.append(f"  signed by:   {signer.get('common_name') or '?'} (issuer: {issuer}, {alg})")
    if not report.trusted:
        development = "development" in (signer.get("issuer") or "")
        lines.append(
            "               "
            + (
                "a sonic-catalog development certificate: verifiers will not trust it"
                if development
                else "not chained to a trust anchor given here (see --trust-anchors)"
            )
        )
    lines.append(
        f"  manifest:    {report.manifest_label}"
        + (f" ({len(report.history)} earlier in its history)" if report.history else "")
    )
    if report.claim_generator:
        lines.append(f"  made with:   {report.claim_generator}")
    claimed = "yes (IPTC digital source type trainedAlgorithmicMedia)" if report.ai_generated else "not claimed"
    lines.append(f"  AI-generated: {claimed}")
    for action in report.actions:
        agent = action.get("softwareAgent") or {}
        agent_text = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k))
        source = (action.get("digitalSourceType") or "").rsplit("/", 1)[-1]
        details = ", ".join(part for part in (f"by {agent_text}" if agent_text else "", source) if part)
        lines.append(f"  action:      {action['action']}" + (f" ({details})" if details else ""))
        if action.get("description") and action["action"] != "c2pa.created":
            lines.append(f"               {action['description']}")
    for item in report.ingredients:
        digest = f", sha256 {item['sha256'][:16]}..." if item.get("sha256") else ""
        role = f"{item['description']}: " if item.get("description") else ""
        signed = ", with its own credentials" if item.get("manifest") else ""
        lines.append(f"  ingredient:  {role}{item.get('title')} ({item.get('relationship')}{digest}{signed})")
    if report.sonic:
        claims = {k: v for k, v in report.sonic.items() if k not in ("label", "disclosure", "inputs", "ai_generated")}
        generator = claims.pop("generator", None)
        for key, value in claims.items():
            if value is not None:
                lines.append(f"  {key + ':':<12} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
        if generator:
            parameters = json.dumps(generator.get("params"))
            lines.append(f"  generator:   {generator.get('name')} {generator.get('version')}, parameters {parameters}")
    return "\n".join(lines)


def _shown(url: str) -> str:
    from tasks.storage import redact

    return redact(url)


def _read(url: str, what: str) -> bytes:
    import fsspec

    try:
        with fsspec.open(url, "rb") as handle:
            return handle.read(1 << 20)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {_shown(url)}") from None
    except (OSError, ValueError, ImportError) as exc:
        raise InputError(f"cannot read {what} {_shown(url)}: {exc}") from None


def _certificates_only(pem: bytes) -> bytes:
    """Only the CERTIFICATE blocks (a development bundle also holds its private key)."""
    from sonic_model.signing_material import pem_blocks

    certificates = pem_blocks(pem, b"CERTIFICATE")
    if not certificates:
        raise InputError("--trust-anchors holds no PEM certificate")
    return certificates


class _open:
    """The video as a seekable binary file (a local file, or an fsspec file)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.handle = None

    def __enter__(self):
        import fsspec

        try:
            self.handle = fsspec.open(self.url, "rb").open()
            size = getattr(self.handle, "size", None)
        except FileNotFoundError:
            raise InputError(f"no such video: {_shown(self.url)}") from None
        except (OSError, ValueError, ImportError) as exc:
            raise InputError(f"cannot open {_shown(self.url)}: {exc}") from None
        if size is not None and size > MAX_VIDEO_BYTES:
            self.handle.close()
            raise InputError(f"{_shown(self.url)} is {size / 2**30:.1f} GiB; verify reads videos up to 4 GiB")
        return self.handle

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.close()
