"""Content Credentials (C2PA): signing, reading back with c2pa's own Reader, tampering, `verify`,
`calibrate` re-signing, the development certificate, and catalog runs that publish signed videos.

The video is a real preview render of a fixture portrait and speech (128 px, to stay quick);
keys and certificates are made in the test with `cryptography`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from pathlib import Path

import fsspec
import pandas as pd
import pytest
from cli_runs import render_one, run_cli

from sonic_model.credentials import (
    IPTC_TRAINED_ALGORITHMIC_MEDIA,
    RENDER_ASSERTION,
    IngredientHash,
    creation_manifest,
    read_credentials,
    sign_video,
)
from sonic_model.digest import sha256_file
from sonic_model.errors import CredentialsError, SigningMaterialError
from sonic_model.signing_material import create_development_credentials, split_bundle
from tasks.signing import DEVELOPMENT_BUNDLE, ensure_development_bundle, material_for, resolve_signing

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = FIXTURES / "portrait_hopper.jpg"
SPEECH = FIXTURES / "speech_en_pause_16k.wav"


@pytest.fixture(scope="module")
def bundle() -> bytes:
    return create_development_credentials(label="tests")


@pytest.fixture(scope="module")
def material(bundle):
    return split_bundle(bundle, origin="test bundle", development=True)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """An unsigned preview render (no post-processing, so calibrate has work to do)."""
    from sonic_model.generators import RenderParams, create_generator
    from sonic_model.image import load_image
    from sonic_model.render import render_video

    out = tmp_path_factory.mktemp("render") / "talk.mp4"
    params = RenderParams(min_resolution=128, lipsync_calibration=False, motion_smoothing=0.0)
    render_video(create_generator("preview"), load_image(PORTRAIT), SPEECH, out, params)
    return out


def the_manifest(**facts) -> dict:
    return creation_manifest(
        title="talk.mp4",
        generator="preview",
        generator_version="1.0",
        params={"seed": 7, "min_resolution": 128},
        ingredients=[
            IngredientHash.of("portrait", f"s3://media/{PORTRAIT.name}", sha256_file(PORTRAIT)),
            IngredientHash.of("script audio", f"media/{SPEECH.name}", sha256_file(SPEECH)),
        ],
        facts={
            "row_id": "row-7",
            "language": "en",
            "consent_ref": "release/test-007",
            "content_key": "k" * 64,
            **facts,
        },
    )


@pytest.fixture(scope="module")
def signed(rendered, material, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "talk.mp4"
    sign_video(rendered, out, the_manifest(), material)
    return out


def mdat_payload_offset(data: bytes) -> int:
    """Where the media data (the coded frames and sound) starts: after the `mdat` box header."""
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[position + 8 : position + 16], "big"), 16
        if kind == b"mdat":
            return position + header
        position += size
    raise AssertionError("no mdat box")


# --- signing and reading back ---------------------------------------------------------------------


def test_signed_video_reads_back_with_the_c2pa_reader(signed, rendered):
    import c2pa

    with c2pa.Reader(str(signed)) as reader:
        store = json.loads(reader.json())
        assert reader.get_validation_state() in ("Valid", "Trusted")
    manifest = store["manifests"][store["active_manifest"]]
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    created = actions[0]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == IPTC_TRAINED_ALGORITHMIC_MEDIA
    assert created["softwareAgent"] == {"name": "preview", "version": "1.0"}
    # Both inputs as hashes, linked from the action; no thumbnail or copy of the photo anywhere.
    ingredients = {item["description"]: item for item in manifest["ingredients"]}
    assert set(ingredients) == {"portrait", "script audio"}
    assert ingredients["portrait"]["relationship"] == "inputTo" and ingredients["portrait"]["title"] == PORTRAIT.name
    assert ingredients["portrait"]["metadata"]["org.sonic-catalog.sha256"] == sha256_file(PORTRAIT)
    assert ingredients["script audio"]["metadata"]["org.sonic-catalog.sha256"] == sha256_file(SPEECH)
    assert len(created["parameters"]["ingredients"]) == 2
    assert not any("thumbnail" in json.dumps(item) for item in manifest["ingredients"])
    assert not any("thumbnail" in a["label"] for a in manifest["assertions"])
    assert PORTRAIT.read_bytes()[2000:2400] not in signed.read_bytes()
    ours = next(a for a in manifest["assertions"] if a["label"] == RENDER_ASSERTION)["data"]
    assert (ours["row_id"], ours["language"], ours["consent_ref"], ours["content_key"]) == (
        "row-7",
        "en",
        "release/test-007",
        "k" * 64,
    )
    assert ours["generator"] == {"name": "preview", "version": "1.0", "params": {"seed": 7, "min_resolution": 128}}
    assert ours["ai_generated"] is True
    # Signing adds the manifest box and nothing else: the coded media are the render's.
    assert signed.stat().st_size - rendered.stat().st_size < 64 * 1024


def test_the_signed_file_still_plays_as_before(signed, rendered):
    from sonic_model.video_reader import probe_video

    before, after = probe_video(rendered), probe_video(signed)
    assert (after.num_frames, after.width, after.height) == (before.num_frames, before.width, before.height)
    assert after.audio_codec == before.audio_codec and after.metadata.get("comment") == before.metadata.get("comment")


def test_verify_reports_the_claims_and_exits_0(signed):
    done = run_cli("verify", str(signed))
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "VALID" in out and "NOT on a trust list" in out and "development certificate" in out
    assert "trainedAlgorithmicMedia" in out and "c2pa.created" in out and PORTRAIT.name in out and "row-7" in out
    report = json.loads(run_cli("verify", str(signed), "--json").stdout)
    assert report["status"] == "valid" and report["ai_generated"] and not report["trusted"]
    assert report["sonic"]["consent_ref"] == "release/test-007"
    assert [note["code"] for note in report["trust_notes"]] == ["signingCredential.untrusted"]


def test_verify_trusts_a_signer_under_the_given_anchor(signed, bundle, tmp_path):
    anchors = tmp_path / "bundle.pem"
    anchors.write_bytes(bundle)  # the private key in it is ignored: only certificates are anchors
    report = json.loads(run_cli("verify", str(signed), "--json", "--trust-anchors", str(anchors)).stdout)
    assert report["status"] == "valid" and report["trusted"] and not report["trust_notes"]
    other = tmp_path / "other.pem"
    other.write_bytes(create_development_credentials(label="other"))
    report = json.loads(run_cli("verify", str(signed), "--json", "--trust-anchors", str(other)).stdout)
    assert report["status"] == "valid" and not report["trusted"]


def test_flipped_media_bytes_are_a_hash_mismatch_exit_1(signed, tmp_path):
    data = bytearray(signed.read_bytes())
    data[mdat_payload_offset(bytes(data)) + 1000] ^= 0xFF
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    done = run_cli("verify", str(tampered))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "INVALID" in done.stdout and "assertion.bmffHash.mismatch" in done.stdout
    report = json.loads(run_cli("verify", str(tampered), "--json").stdout)
    assert report["status"] == "invalid" and "assertion.bmffHash.mismatch" in {p["code"] for p in report["problems"]}


def test_remux_without_the_manifest_exit_2(signed, tmp_path):
    from sonic_model.encode import ffmpeg_executable

    remuxed = tmp_path / "remuxed.mp4"
    subprocess.run(
        [ffmpeg_executable(), "-loglevel", "error", "-i", str(signed), "-c", "copy", str(remuxed)], check=True
    )
    done = run_cli("verify", str(remuxed))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no Content Credentials" in done.stdout
    assert json.loads(run_cli("verify", str(remuxed), "--json").stdout)["status"] == "none"


def test_verify_reads_urls_and_refuses_non_videos(signed, tmp_path):
    from sonic_catalog.cli import main

    memory = fsspec.filesystem("memory")
    memory.pipe("/verify-test/talk.mp4", signed.read_bytes())
    assert main(["verify", "memory://verify-test/talk.mp4"]) == 0
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    done = run_cli("verify", str(text))
    assert (
        done.returncode == 3 and done.stderr.startswith("error: not a readable video") and "not an MP4" in done.stderr
    )
    assert "Traceback" not in done.stderr
    done = run_cli("verify", str(tmp_path / "missing.mp4"))
    assert done.returncode == 3 and "no such video" in done.stderr


def test_verify_json_is_always_an_object_with_a_distinct_exit_code(tmp_path):
    """Tampered 1 and unsigned 2 are covered above; not a video is 3, an unreadable anchor file 4, all as JSON."""
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n" * 50)
    done = run_cli("verify", str(text), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 3 == report["exit_code"] and report["status"] == "not_a_video"
    assert "not an MP4" in report["error"] and done.stderr == ""
    done = run_cli("verify", str(tmp_path / "missing.mp4"), "--json")
    assert done.returncode == 3 and json.loads(done.stdout)["status"] == "not_a_video"
    done = run_cli("verify", str(text), "--json", "--trust-anchors", str(tmp_path / "none.pem"))
    assert done.returncode == 4 and json.loads(done.stdout)["status"] == "cannot_check"


def test_a_signed_file_that_does_not_validate_is_refused(rendered, material, tmp_path, monkeypatch):
    """The check before publishing: a signed file that reads back invalid is removed, not returned."""
    import sonic_model.credentials as credentials

    real = credentials.read_credentials

    def tampering_reader(path, **kwargs):
        data = bytearray(Path(path).read_bytes())
        data[mdat_payload_offset(bytes(data)) + 500] ^= 0xFF
        Path(path).write_bytes(bytes(data))
        return real(path, **kwargs)

    monkeypatch.setattr(credentials, "read_credentials", tampering_reader)
    out = tmp_path / "signed.mp4"
    with pytest.raises(CredentialsError, match="does not validate .*bmffHash.mismatch"):
        sign_video(rendered, out, the_manifest(), material)
    assert not out.exists()


# --- signing material -------------------------------------------------------------------------------


def split_files(bundle: bytes, folder: Path) -> tuple[Path, Path]:
    from sonic_model.signing_material import pem_blocks

    cert, key = folder / "chain.pem", folder / "signer.key"
    cert.write_bytes(pem_blocks(bundle, b"CERTIFICATE"))
    key.write_bytes(pem_blocks(bundle, b"PRIVATE KEY"))
    return cert, key


def test_unusable_signing_material_is_a_clear_error(bundle, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert, key = split_files(bundle, tmp_path)
    other_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SigningMaterialError, match="does not belong to the first certificate"):
        split_bundle(
            cert.read_bytes()
            + other_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            origin="x",
        )
    encrypted = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"secret")
    )
    with pytest.raises(SigningMaterialError, match="encrypted with a passphrase"):
        split_bundle(cert.read_bytes() + encrypted, origin="x")
    with pytest.raises(SigningMaterialError, match="no PEM private key"):
        split_bundle(cert.read_bytes(), origin="x")
    with pytest.raises(SigningMaterialError, match="not found on this machine"):
        material_for({"mode": "configured", "cert": str(tmp_path / "nope.pem"), "key": str(key)})


def test_a_key_only_the_workers_hold_is_named_not_read_on_a_cluster(bundle, tmp_path):
    """On a cluster the flow may not see the key (a secret mounted on the GPU workers only): it
    records the paths and lets the workers read them; a local run fails before any row."""
    from tasks.signing import describe_signing

    cert, key = split_files(bundle, tmp_path)
    elsewhere = {"mode": "configured", "cert": "/run/secrets/c2pa/chain.pem", "key": "/run/secrets/c2pa/signer.key"}
    assert resolve_signing(elsewhere, str(tmp_path / "catalog")) == elsewhere
    described = describe_signing(elsewhere, required=False)
    assert described["signer"] is None and "the workers read it themselves" in described["note"]
    with pytest.raises(SigningMaterialError, match="not found on this machine"):
        describe_signing(elsewhere)
    here = {"mode": "configured", "cert": str(cert), "key": str(key)}
    assert describe_signing(here, required=False)["signer"].startswith("sonic-catalog development signer")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--signing-cert", "{cert}"], "give both the certificate chain and its private key"),
        (["--signing-cert", "{cert}", "--signing-key", "{missing}"], "signing key {missing} not found"),
        (["--no-credentials", "--signing-key", "{key}"], "--no-credentials contradicts"),
    ],
)
def test_render_refuses_bad_signing_options_in_one_line(bundle, tmp_path, args, expected):
    cert, key = split_files(bundle, tmp_path)
    names = {"cert": cert, "key": key, "missing": tmp_path / "missing.key"}
    args = [arg.format(**names) for arg in args]
    manifest = tmp_path / "manifest.parquet"
    pd.DataFrame([{"row_id": "a"}]).to_parquet(manifest)
    done = run_cli("render", str(manifest), "--catalog", str(tmp_path / "catalog"), *args)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected.format(**names) in lines[0], done.stderr
    assert not (tmp_path / "catalog").exists()


# --- the development certificate ----------------------------------------------------------------------


def test_development_certificate_is_created_once_and_never_overwritten(tmp_path):
    catalog = tmp_path / "catalog"
    urls = []
    threads = [threading.Thread(target=lambda: urls.append(ensure_development_bundle(str(catalog)))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bundle = catalog / "_credentials" / DEVELOPMENT_BUNDLE
    assert set(urls) == {str(bundle)}
    first = bundle.read_bytes()
    assert bundle.stat().st_mode & 0o077 == 0  # the key in it is readable by its owner only
    assert [p.name for p in bundle.parent.iterdir()] == [DEVELOPMENT_BUNDLE]  # no temporaries left
    assert ensure_development_bundle(str(catalog)) == str(bundle) and bundle.read_bytes() == first
    assert resolve_signing(None, str(catalog)) == {"mode": "development", "bundle": str(bundle)}
    assert bundle.read_bytes() == first
    assert split_bundle(first, origin="x", development=True).signer_name.startswith("sonic-catalog development signer")


def test_development_certificate_on_object_storage_is_kept(tmp_path):
    url = ensure_development_bundle("memory://dev-cert-test/catalog")
    assert url.startswith("memory://") and url.endswith("/dev-cert-test/catalog/_credentials/development-signer.pem")
    memory = fsspec.filesystem("memory")
    first = memory.cat(url)
    assert ensure_development_bundle("memory://dev-cert-test/catalog") == url and memory.cat(url) == first
    assert [p for p in memory.find("/dev-cert-test") if ".partial" in p] == []


def test_no_key_material_is_ever_in_the_repository():
    """Development certificates live in catalogs and the user's data folder, never in a checkout,
    and git ignores key files someone drops into one."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    key_block = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s+[A-Za-z0-9+/=\s]{64,}-----END")
    for name in filter(None, listed):
        path = ROOT / name
        if path.is_file() and path.stat().st_size < 5_000_000:
            assert not key_block.search(path.read_bytes()), name
    assert key_block.search(create_development_credentials())  # the pattern does find a key
    ignored = subprocess.run(
        ["git", "check-ignore", "signing/key.pem", "out/catalog/_credentials/development-signer.pem"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert len(ignored.stdout.split()) == 2, ignored


# --- render-one and calibrate --------------------------------------------------------------------------


def test_calibrate_re_signs_as_an_edit_with_the_original_as_parent(signed, tmp_path):
    video = tmp_path / "talk.mp4"
    shutil.copy(signed, video)
    original_label = read_credentials(video).manifest_label
    done = run_cli("calibrate", str(video), "--out", str(video), "--av-offset-ms", "80", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["applied_ms"] == 80 and result["credentials"]["manifest_label"]
    report = read_credentials(video)
    assert report.status == "valid" and report.manifest_label == result["credentials"]["manifest_label"]
    assert [a["action"] for a in report.actions] == ["c2pa.opened", "c2pa.edited"]
    assert report.actions[1]["parameters"]["av_offset_applied_ms"] == 80
    parent = report.ingredients[0]
    assert parent["relationship"] == "parentOf" and parent["manifest"] == original_label
    assert parent["sha256"] == sha256_file(signed)
    assert report.history == [original_label] and report.ai_generated  # the creation travels along


def test_calibrate_signs_an_unsigned_video_too_and_can_be_told_not_to(rendered, tmp_path):
    out = tmp_path / "calibrated.mp4"
    assert run_cli("calibrate", str(rendered), "--out", str(out), "--av-offset-ms", "40").returncode == 0
    report = read_credentials(out)
    assert report.status == "valid" and report.ingredients[0]["sha256"] == sha256_file(rendered)
    assert report.ingredients[0]["manifest"] is None and not report.history
    plain = tmp_path / "plain.mp4"
    assert (
        run_cli("calibrate", str(rendered), "--out", str(plain), "--av-offset-ms", "40", "--no-credentials").returncode
        == 0
    )
    assert read_credentials(plain).status == "none"


def test_render_one_signs_with_the_configured_certificate(tmp_path, bundle):
    cert, key = split_files(bundle, tmp_path)
    out = tmp_path / "talk.mp4"
    done = render_one(
        PORTRAIT,
        SPEECH,
        out,
        "--min-resolution",
        "128",
        "--signing-cert",
        str(cert),
        "--signing-key",
        str(key),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    credentials = json.loads(done.stdout)["credentials"]
    assert credentials["development"] is False and credentials["validation_state"] == "Valid"
    report = read_credentials(out)
    assert report.status == "valid" and report.signer["common_name"].startswith("sonic-catalog development signer")
    assert report.sonic["command"] == "render-one"
    assert {item["sha256"] for item in report.ingredients} == {sha256_file(PORTRAIT), sha256_file(SPEECH)}


# --- catalog runs -----------------------------------------------------------------------------------------


def small_manifest(root: Path) -> Path:
    from test_catalog_flow import manifest_rows, write_media

    durations = write_media(root / "media")
    manifest = root / "manifest.parquet"
    pd.DataFrame([r for r in manifest_rows(durations) if r["row_id"] == "good-en"]).to_parquet(manifest)
    return manifest


def test_render_with_signing_from_the_environment(tmp_path, bundle, monkeypatch):
    from test_catalog_flow import run_cli

    cert, key = split_files(bundle, tmp_path)
    catalog = tmp_path / "catalog"
    monkeypatch.setenv("SONIC_SIGNING_CERT", str(cert))
    monkeypatch.setenv("SONIC_SIGNING_KEY", str(key))
    code, out, err = run_cli("render", str(small_manifest(tmp_path)), "--catalog", str(catalog))
    assert code == 0, out + err
    assert "content credentials: signed by sonic-catalog development signer" in out and "do not trust" not in out
    sidecar = json.loads((catalog / "course" / "en" / "good-en.json").read_text())
    assert sidecar["credentials"]["development"] is False
    report = read_credentials(catalog / "course" / "en" / "good-en.mp4")
    assert report.status == "valid" and report.manifest_label == sidecar["credentials"]["manifest_label"]
    assert report.sonic["row_id"] == "good-en" and report.sonic["content_key"] == sidecar["content_key"]
    assert not (catalog / "_credentials").exists()  # nothing of its own when a certificate is configured
    run = json.loads(next((catalog / "_runs").glob("*/run.json")).read_text())
    assert run["signing"] == {"mode": "configured", "cert": str(cert), "key": str(key)}
    assert "PRIVATE KEY" not in json.dumps(run)


def test_render_with_no_credentials_publishes_unsigned(tmp_path):
    from sonic_catalog.cli import main

    catalog = "memory://no-credentials/catalog"
    assert main(["render", str(small_manifest(tmp_path)), "--catalog", catalog, "--no-credentials"]) == 0
    memory = fsspec.filesystem("memory")
    sidecar = json.loads(memory.cat("/no-credentials/catalog/course/en/good-en.json"))
    assert sidecar["credentials"] is None
    with memory.open("/no-credentials/catalog/course/en/good-en.mp4", "rb") as handle:
        assert read_credentials(handle).status == "none"
    assert not memory.exists("/no-credentials/catalog/_credentials")
