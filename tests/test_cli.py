"""The ``snsmiddleware verify`` command explains which check fails, for people and machines."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from snsmiddleware.cli import main
from snsmiddleware.testing import MessageSigner, TestCA

VECTORS = Path(__file__).parent / "vectors"
V2_MESSAGE = VECTORS / "18-notification-v2-2022-nosubject-us-east-2.json"
CERT_2022 = VECTORS / "sns-cert-2021-09_2022-08-7ff5318490ec183fbaddaa2a969abfda.pem"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_genuine_capture_verifies_offline_as_of_its_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run(
        capsys, "verify", str(V2_MESSAGE), "--offline", str(CERT_2022), "--at", "message"
    )
    assert code == 0
    assert out.strip().endswith("RESULT: VERIFIED")
    assert "[FAIL]" not in out and out.count("[PASS]") == 7


def test_tampered_capture_names_the_failing_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tampered = tmp_path / "tampered.json"
    tampered.write_bytes(V2_MESSAGE.read_bytes().replace(b"Hello world", b"Hello World"))
    code, out = run(capsys, "verify", str(tampered), "--offline", str(CERT_2022), "--at", "message")
    assert code == 1
    assert "[FAIL] signature matches the signed fields" in out
    assert "RESULT: REJECTED (403 bad_signature)" in out
    assert "was changed after signing" in out


def test_old_capture_at_real_time_is_stale_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "verify", str(V2_MESSAGE), "--offline", str(CERT_2022), "--json")
    document = json.loads(out)
    assert code == 1 and document["verified"] is False
    assert (document["status"], document["reason"]) == (403, "stale_message")
    statuses = {stage["name"]: stage["status"] for stage in document["stages"]}
    assert statuses["certificate_url"] == "passed"
    assert statuses["freshness"] == "failed"
    assert statuses["signature"] == "not_run"


def test_wrong_topic_and_wrong_certificate_are_explained(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(
        capsys,
        "verify",
        str(V2_MESSAGE),
        "--topic",
        "arn:aws:sns:us-east-2:295079676684:mine",
        "--at",
        "message",
    )
    assert code == 1 and "topic_not_allowed" in out
    other = tmp_path / "other.pem"
    _, impostor = TestCA().issue(
        not_before=datetime(2021, 1, 1, tzinfo=UTC),
        not_after=datetime(2023, 1, 1, tzinfo=UTC),
    )
    other.write_bytes(impostor.public_bytes(Encoding.PEM))
    code, out = run(
        capsys, "verify", str(V2_MESSAGE), "--offline", str(other), "--at", "message", "--json"
    )
    assert json.loads(out)["reason"] == "bad_signature"


def test_kit_signed_message_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = MessageSigner()
    cert = tmp_path / "kit.pem"
    cert.write_bytes(signer.ca.certificate_pem)
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BytesIO(signer.subscription_confirmation().body))
    )
    code, out = run(capsys, "verify", "-", "--offline", str(cert), "--topic", signer.topic_arn)
    assert code == 0, out
    assert "[PASS] SubscribeURL confirms this topic and token only" in out


def test_garbage_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "g.json"
    garbage.write_bytes(b"{not json")
    code, out = run(capsys, "verify", str(garbage))
    assert code == 1 and "[FAIL] well-formed SNS message" in out
    assert main(["verify", str(tmp_path / "missing.json")]) == 2


def test_python_dash_m_entry_point() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "snsmiddleware",
            "verify",
            str(V2_MESSAGE),
            "--offline",
            str(CERT_2022),
            "--at",
            "message",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "RESULT: VERIFIED" in done.stdout
