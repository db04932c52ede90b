"""Partition data and the table of SNS signing-certificate names.

* Our built-in partition table agrees with the installed botocore's ``partitions.json``
  (same DNS suffix and region pattern; every built-in region listed by botocore), so a
  botocore too old for a partition still gets the right facts.
* The data is read from botocore's package directory without importing botocore (or boto3),
  once per process.
* The name table matches the facts of AWS's Java SDKs it was built from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from snsmiddleware import partitions as partitions_module
from snsmiddleware.partitions import (
    SIGNING_CERTIFICATE_NAMES,
    aws_certificate_name,
    partition,
    signing_certificate_names,
)

from ._project import modules_after


def botocore_partitions() -> dict[str, dict[str, object]]:
    import botocore

    path = Path(botocore.__file__).parent / "data" / "partitions.json"
    document = json.loads(path.read_text())
    return {entry["id"]: entry for entry in document["partitions"]}


def test_the_builtin_table_agrees_with_botocore() -> None:
    installed = botocore_partitions()
    for partition_id, (suffix, regex, regions) in partitions_module._BUILTIN_PARTITIONS.items():
        assert partition_id in installed, partition_id
        entry = installed[partition_id]
        assert entry["outputs"]["dnsSuffix"] == suffix, partition_id  # type: ignore[index]
        assert entry["regionRegex"] == regex, partition_id
        assert set(regions) <= set(entry["regions"]), partition_id  # type: ignore[arg-type]


def test_every_partition_of_botocore_is_known() -> None:
    for partition_id, entry in botocore_partitions().items():
        found = partition(partition_id)
        assert found is not None, partition_id
        assert found.dns_suffix == entry["outputs"]["dnsSuffix"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("partition_id", "suffix", "region"),
    [
        ("aws", "amazonaws.com", "us-east-1"),
        ("aws-cn", "amazonaws.com.cn", "cn-north-1"),
        ("aws-us-gov", "amazonaws.com", "us-gov-east-1"),
        ("aws-eusc", "amazonaws.eu", "eusc-de-east-1"),
        ("aws-iso", "c2s.ic.gov", "us-iso-east-1"),
        ("aws-iso-b", "sc2s.sgov.gov", "us-isob-east-1"),
        ("aws-iso-e", "cloud.adc-e.uk", "eu-isoe-west-1"),
        ("aws-iso-f", "csp.hci.ic.gov", "us-isof-south-1"),
    ],
)
def test_partitions_of_the_issue(partition_id: str, suffix: str, region: str) -> None:
    found = partition(partition_id)
    assert found is not None
    assert (found.dns_suffix, found.knows(region)) == (suffix, True)


def test_pseudo_regions_are_not_regions() -> None:
    aws = partition("aws")
    assert aws is not None and not aws.knows("aws-global")


def test_every_table_entry_is_a_known_region_under_its_partitions_suffix() -> None:
    """A typo in the table (or a region botocore renamed) fails here, not in production."""
    by_region = {
        region: found
        for found in partitions_module.partitions().values()
        for region in found.regions
    }
    for region, name in SIGNING_CERTIFICATE_NAMES.items():
        assert region in by_region, region
        assert name.endswith("." + by_region[region].dns_suffix), (region, name)
        assert aws_certificate_name(by_region[region].id, region) == name


@pytest.mark.parametrize(
    ("partition_id", "region", "name"),
    [
        # The Java v2 SDK's own test cases (SnsHostProviderTest), plus its source's list.
        ("aws-us-gov", "us-gov-west-1", "sns-us-gov-west-1.amazonaws.com"),
        ("aws-us-gov", "us-gov-east-1", "sns-us-gov-west-1.amazonaws.com"),
        ("aws-cn", "cn-north-1", "sns-cn-north-1.amazonaws.com.cn"),
        ("aws-cn", "cn-northwest-1", "sns-cn-northwest-1.amazonaws.com.cn"),
        ("aws", "me-south-1", "sns-signing.me-south-1.amazonaws.com"),
        ("aws", "ap-east-1", "sns-signing.ap-east-1.amazonaws.com"),
        ("aws", "ap-east-2", "sns-signing.ap-east-2.amazonaws.com"),
        ("aws", "ap-southeast-5", "sns-signing.ap-southeast-5.amazonaws.com"),
        ("aws", "ap-southeast-7", "sns-signing.ap-southeast-7.amazonaws.com"),
        ("aws", "mx-central-1", "sns-signing.mx-central-1.amazonaws.com"),
        ("aws-iso", "us-iso-east-1", "sns-us-iso-east-1.c2s.ic.gov"),
        ("aws-iso-b", "us-isob-east-1", "sns-us-isob-east-1.sc2s.sgov.gov"),
        ("aws-iso-f", "us-isof-east-1", "sns-signing.us-isof-east-1.csp.hci.ic.gov"),
        ("aws-iso-f", "us-isof-south-1", "sns-signing.us-isof-south-1.csp.hci.ic.gov"),
        ("aws-iso-e", "eu-isoe-west-1", "sns-signing.eu-isoe-west-1.cloud.adc-e.uk"),
        ("aws-eusc", "eusc-de-east-1", "sns-signing.eusc-de-east-1.amazonaws.eu"),
        ("aws", "us-east-1", "sns.amazonaws.com"),
        ("aws", "us-west-1", "sns.amazonaws.com"),
        ("aws", "eu-west-1", "sns.amazonaws.com"),
        # Regions without an entry get the partition's name, as in both SDKs.
        ("aws-iso", "us-iso-west-1", "sns.c2s.ic.gov"),
        ("aws-iso-b", "us-isob-west-1", "sns.sc2s.sgov.gov"),
    ],
)
def test_the_name_aws_uses(partition_id: str, region: str, name: str) -> None:
    assert aws_certificate_name(partition_id, region) == name
    assert name in signing_certificate_names(partition_id, region)


def test_accepted_names_stay_under_the_partition_and_region() -> None:
    names = signing_certificate_names("aws-cn", "cn-north-1")
    assert names == {
        "sns-cn-north-1.amazonaws.com.cn",
        "sns.amazonaws.com.cn",
        "sns.cn-north-1.amazonaws.com.cn",
    }
    assert signing_certificate_names("aws", "us-east-1") == {
        "sns.amazonaws.com",
        "sns.us-east-1.amazonaws.com",
    }
    assert signing_certificate_names("aws-evil", "us-east-1") == frozenset()


def test_a_region_botocore_does_not_know_yet_accepts_the_sns_signing_name() -> None:
    """Every region launched since 2019 signs as sns-signing.<region>: a new one must too."""
    assert "sns-signing.us-east-7.amazonaws.com" in signing_certificate_names("aws", "us-east-7")


def test_reading_the_partition_data_imports_neither_botocore_nor_boto3() -> None:
    loaded = modules_after(
        "from snsmiddleware.partitions import partition\n"
        "assert partition('aws-eusc').dns_suffix == 'amazonaws.eu'"
    )
    assert "snsmiddleware" in loaded and not loaded & {"boto3", "botocore"}


@pytest.fixture
def partition_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[None]]:
    """One entry per read of botocore's partition data, from a cleared cache on."""
    partitions_module.partitions.cache_clear()
    reads: list[None] = []
    real = partitions_module._botocore_partitions

    def counting() -> dict[str, tuple[str, str, frozenset[str]]]:
        reads.append(None)
        return real()

    monkeypatch.setattr(partitions_module, "_botocore_partitions", counting)
    try:
        yield reads
    finally:
        partitions_module.partitions.cache_clear()


def test_the_data_is_read_once(partition_reads: list[None]) -> None:
    for _ in range(3):
        assert partition("aws") is not None
    assert len(partition_reads) == 1


@pytest.mark.parametrize(
    "contents",
    [
        pytest.param(None, id="no-botocore"),
        pytest.param(b"{not json", id="corrupt"),
        pytest.param(b'{"partitions": [{"id": "aws"}]}', id="unexpected-shape"),
    ],
)
def test_without_usable_botocore_data_the_builtin_table_is_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, contents: bytes | None
) -> None:
    path = tmp_path / "partitions.json"
    if contents is not None:
        path.write_bytes(contents)
    monkeypatch.setattr(
        partitions_module, "_botocore_data_file", lambda: path if contents is not None else None
    )
    partitions_module.partitions.cache_clear()
    try:
        eusc = partition("aws-eusc")
        assert eusc is not None and eusc.dns_suffix == "amazonaws.eu"
        assert partition("aws") is not None and partition("aws").knows("us-east-1")  # type: ignore[union-attr]
    finally:
        partitions_module.partitions.cache_clear()


def test_the_data_is_read_at_start_up_not_per_request(partition_reads: list[None]) -> None:
    from snsmiddleware import InsecureConfigurationWarning, SnsVerifier
    from snsmiddleware.testing import FrozenClock, MessageSigner

    clock = FrozenClock()
    served: list[MessageSigner] = []
    with pytest.warns(InsecureConfigurationWarning):
        verifier = SnsVerifier(
            topics=["*"],
            fetch_certificate=lambda url: served[0].fetch_certificate(url),
            clock=clock,
        )
    assert len(partition_reads) == 1  # while building, before any request
    signer = MessageSigner.for_topic("arn:aws-eusc:sns:eusc-de-east-1:123456789012:t", clock=clock)
    served.append(signer)
    for _ in range(3):
        verifier.verify(signer.notification("x").body)
    assert len(partition_reads) == 1
