"""Signing material for Content Credentials: a private key and its X.509 certificate chain.

One job: the key and certificates `sonic_model.credentials` signs with. Loading them from PEM
files or URLs (`load_signing_material`, `split_bundle`), checking them before a render depends
on them (the key matches the leaf certificate, the chain is in date, the algorithm is one C2PA
accepts), and making a throwaway development CA + signer pair for catalogs with none configured
(`create_development_credentials`: it signs correctly, but no verifier trusts it). The key and
certificates always come from the caller's configuration, never from a manifest.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field

from sonic_model.errors import SigningMaterialError

DEVELOPMENT_ORGANIZATION = "sonic-catalog development (not trusted)"
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


@dataclass(frozen=True)
class SigningMaterial:
    """A private key and its certificate chain (leaf first), PEM, ready for c2pa.

    `origin` says where they came from (for messages, never the key itself); `development`
    marks a catalog's self-made certificate, which verifiers do not trust.
    """

    cert_chain_pem: bytes
    private_key_pem: bytes = field(repr=False)
    alg: str
    origin: str
    development: bool = False

    @classmethod
    def from_pem(
        cls, cert_chain_pem: bytes, private_key_pem: bytes, *, origin: str, development: bool = False
    ) -> SigningMaterial:
        """Check that the chain parses, the key is unencrypted and belongs to the leaf, and the
        leaf is valid today; choose the signing algorithm from the key."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            chain = x509.load_pem_x509_certificates(pem_blocks(cert_chain_pem, b"CERTIFICATE"))
        except ValueError as exc:
            raise SigningMaterialError(
                f"signing certificate ({origin}) is not a PEM certificate chain: {exc}; give the signer's "
                "certificate first, then its intermediate CA certificates"
            ) from None
        key_blocks = [block for block in _PEM_BLOCK.finditer(private_key_pem) if b"PRIVATE KEY" in block.group(1)]
        if not key_blocks:
            raise SigningMaterialError(
                f"signing key ({origin}) holds no PEM private key ('-----BEGIN PRIVATE KEY-----')"
            )
        if b"ENCRYPTED" in key_blocks[0].group(1) or b"Proc-Type: 4,ENCRYPTED" in key_blocks[0].group(0):
            raise SigningMaterialError(
                f"signing key ({origin}) is encrypted with a passphrase; give an unencrypted PKCS#8 key "
                "(kept in a secret store or a mounted secret, never in the repository)"
            )
        try:
            key = serialization.load_pem_private_key(key_blocks[0].group(0), password=None)
        except (ValueError, TypeError) as exc:
            raise SigningMaterialError(f"signing key ({origin}) cannot be read: {exc}") from None
        leaf = chain[0]
        public = serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(serialization.Encoding.DER, public) != leaf.public_key().public_bytes(
            serialization.Encoding.DER, public
        ):
            raise SigningMaterialError(
                f"signing key ({origin}) does not belong to the first certificate of the chain "
                f"({_subject(leaf)}); the chain must start with the signer's own certificate"
            )
        now = datetime.datetime.now(datetime.UTC)
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise SigningMaterialError(
                f"signing certificate {_subject(leaf)} ({origin}) is not valid now: valid from "
                f"{leaf.not_valid_before_utc:%Y-%m-%d} to {leaf.not_valid_after_utc:%Y-%m-%d}"
            )
        # c2pa reads the key as PKCS#8; an "EC PRIVATE KEY" or "RSA PRIVATE KEY" file is re-encoded.
        pkcs8 = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        chain_pem = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
        return cls(chain_pem, pkcs8, _algorithm_for(key, origin), origin, development)

    @property
    def signer_name(self) -> str:
        """The signer as a verifier shows it: the leaf certificate's subject."""
        from cryptography import x509

        return _subject(x509.load_pem_x509_certificate(pem_blocks(self.cert_chain_pem, b"CERTIFICATE")))

    def describe(self) -> dict:
        """What may be recorded about the signer (no key material)."""
        return {"signer": self.signer_name, "alg": self.alg, "origin": self.origin, "development": self.development}

    def c2pa_signer(self):
        import c2pa

        try:
            return c2pa.Signer.from_info(c2pa.C2paSignerInfo(self.alg, self.cert_chain_pem, self.private_key_pem, None))
        except c2pa.C2paError as exc:
            raise SigningMaterialError(f"c2pa refused the signing material ({self.origin}): {exc}") from None


def load_signing_material(
    cert_chain_pem: bytes, private_key_pem: bytes, *, origin: str, development: bool = False
) -> SigningMaterial:
    return SigningMaterial.from_pem(cert_chain_pem, private_key_pem, origin=origin, development=development)


def split_bundle(bundle_pem: bytes, *, origin: str, development: bool = False) -> SigningMaterial:
    """Signing material from one PEM file holding the private key and the chain."""
    return SigningMaterial.from_pem(bundle_pem, bundle_pem, origin=origin, development=development)


def create_development_credentials(*, label: str = "catalog", valid_days: int = 3650) -> bytes:
    """A new development CA and a signer it issued, as one PEM bundle (key, signer, CA).

    The signer certificate follows the C2PA certificate profile (end entity, digitalSignature,
    emailProtection EKU, issued by a CA): c2pa-rs accepts it and validators check the signature
    and the hash binding, then report `signingCredential.untrusted`, since no trust list holds
    this CA. For development and demos; production signs with a certificate from a CA on the
    C2PA trust list (`--signing-cert`/`--signing-key`).
    """
    import secrets

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=valid_days)
    tag = secrets.token_hex(4)
    label = re.sub(r"[^A-Za-z0-9._-]+", "-", label)[:20] or "catalog"  # names are at most 64 characters

    def name(common: str) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, common),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVELOPMENT_ORGANIZATION),
            ]
        )

    def usage(**flags: bool) -> x509.KeyUsage:
        names = (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        )
        return x509.KeyUsage(**{flag: flags.get(flag, False) for flag in names})

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"sonic-catalog development CA {tag} ({label})")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(name(f"sonic-catalog development signer {tag} ({label})"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + signer.public_bytes(serialization.Encoding.PEM)
        + ca.public_bytes(serialization.Encoding.PEM)
    )


def pem_blocks(pem: bytes, kind: bytes) -> bytes:
    """Only the PEM blocks of one kind (a bundle also holds the key)."""
    return b"".join(
        block.group(0).rstrip(b"\r\n") + b"\n" for block in _PEM_BLOCK.finditer(pem) if block.group(1) == kind
    )


def _subject(cert) -> str:
    from cryptography.x509.oid import NameOID

    def first(oid):
        values = cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    common, organization = first(NameOID.COMMON_NAME), first(NameOID.ORGANIZATION_NAME)
    if common and organization:
        return f"{common}, {organization}"
    return common or organization or cert.subject.rfc4514_string()


def _algorithm_for(key, origin: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
        raise SigningMaterialError(
            f"signing key ({origin}) uses curve {key.curve.name}; C2PA signs with P-256, P-384 or P-521"
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise SigningMaterialError(f"signing key ({origin}) is RSA-{key.key_size}; C2PA needs at least 2048 bits")
        return "ps256"
    raise SigningMaterialError(
        f"signing key ({origin}) is a {type(key).__name__}; use EC (P-256/384/521), Ed25519 or RSA"
    )
