"""One way to build the odd certificates tests need that :class:`TestCA` does not issue:
any key type, no common name, any SubjectAlternativeName list, extra extensions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from snsmiddleware.verifier import utc_now


def build_certificate(
    *,
    key: Any,
    issuer_key: Any,
    issuer_name: x509.Name,
    common_name: str | None = "sns.amazonaws.com",
    san: Sequence[str] | None = ("sns.amazonaws.com",),
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """A certificate for ``key`` signed by ``issuer_key`` (defaults: valid from a day ago for
    30 days, named and DNS-SAN'd ``sns.amazonaws.com``; ``None`` leaves a name out)."""
    now = utc_now()
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=30))
    )
    if san is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in san]), critical=False
        )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())
