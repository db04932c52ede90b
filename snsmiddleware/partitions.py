"""AWS partitions and the names of SNS signing certificates in each of their regions.

Two facts decide where a message's certificate may come from and what it may be called:

* **Partition → DNS suffix and regions.** botocore's own partition data
  (``botocore/data/partitions.json``, shipped with the boto3 we depend on) is the authority.
  It is read once, on first use, straight from botocore's package directory: botocore and
  boto3 are never imported for it. Our built-in copy below (checked against botocore's by
  ``tests/test_partitions.py``) covers a botocore too old to know a partition; for each
  partition the suffix and region pattern come from botocore when it has them, and the regions
  are the union of both.
* **Region → certificate name.** :data:`SIGNING_CERTIFICATE_NAMES` is the one table of the
  names AWS gives its SNS signing certificates where they differ from ``sns.<suffix>``.

A region is *known* when the partition data lists it. A region that merely has the
partition's shape (its ``regionRegex``) may be one launched after the installed botocore;
:class:`~snsmiddleware.policy.TopicAllowlist` accepts such a region only when the allowlist
names it literally (SECURITY.md explains the trade-off).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Partition:
    """One AWS partition: its DNS suffix, the shape of its region names, its known regions."""

    id: str
    dns_suffix: str
    region_pattern: re.Pattern[str]
    regions: frozenset[str]

    def has_region_shape(self, region: str) -> bool:
        """True when ``region`` is spelled like a region of this partition."""
        return self.region_pattern.fullmatch(region) is not None

    def knows(self, region: str) -> bool:
        """True when the partition data lists ``region`` (it exists, or existed)."""
        return region in self.regions


# Copied from botocore 1.44.8's data/partitions.json (real regions only; the "*-global"
# pseudo-regions are left out). tests/test_partitions.py fails when botocore disagrees.
_BUILTIN_PARTITIONS: Final[dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "aws": (
        "amazonaws.com",
        r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$",
        (
            "af-south-1",
            "ap-east-1",
            "ap-east-2",
            "ap-northeast-1",
            "ap-northeast-2",
            "ap-northeast-3",
            "ap-south-1",
            "ap-south-2",
            "ap-southeast-1",
            "ap-southeast-2",
            "ap-southeast-3",
            "ap-southeast-4",
            "ap-southeast-5",
            "ap-southeast-6",
            "ap-southeast-7",
            "ca-central-1",
            "ca-west-1",
            "eu-central-1",
            "eu-central-2",
            "eu-north-1",
            "eu-south-1",
            "eu-south-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "il-central-1",
            "me-central-1",
            "me-south-1",
            "me-west-1",
            "mx-central-1",
            "sa-east-1",
            "sa-west-1",
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
        ),
    ),
    "aws-cn": ("amazonaws.com.cn", r"^cn\-\w+\-\d+$", ("cn-north-1", "cn-northwest-1")),
    "aws-us-gov": ("amazonaws.com", r"^us\-gov\-\w+\-\d+$", ("us-gov-east-1", "us-gov-west-1")),
    "aws-eusc": ("amazonaws.eu", r"^eusc\-(de)\-\w+\-\d+$", ("eusc-de-east-1",)),
    "aws-iso": ("c2s.ic.gov", r"^us\-iso\-\w+\-\d+$", ("us-iso-east-1", "us-iso-west-1")),
    "aws-iso-b": ("sc2s.sgov.gov", r"^us\-isob\-\w+\-\d+$", ("us-isob-east-1", "us-isob-west-1")),
    "aws-iso-e": ("cloud.adc-e.uk", r"^eu\-isoe\-\w+\-\d+$", ("eu-isoe-west-1",)),
    "aws-iso-f": ("csp.hci.ic.gov", r"^us\-isof\-\w+\-\d+$", ("us-isof-east-1", "us-isof-south-1")),
}

# The names AWS's SNS signing certificates carry where they are not ``sns.<dns suffix>``.
# Source: the AWS SDK for Java v2, services-custom/sns-message-manager,
# software/amazon/awssdk/messagemanager/sns/internal/SnsHostProvider.java
# (signingCertCommonNameInternal, 2026), whose China and GovCloud entries agree with the AWS
# SDK for Java v1's com/amazonaws/services/sns/message/SnsMessageManager.java
# (resolveCertCommonName). Both SDKs expect ``sns.<dns suffix>`` everywhere else.
SIGNING_CERTIFICATE_NAMES: Final[Mapping[str, str]] = {
    # China
    "cn-north-1": "sns-cn-north-1.amazonaws.com.cn",
    "cn-northwest-1": "sns-cn-northwest-1.amazonaws.com.cn",
    # GovCloud: one name for both regions
    "us-gov-west-1": "sns-us-gov-west-1.amazonaws.com",
    "us-gov-east-1": "sns-us-gov-west-1.amazonaws.com",
    # ISO partitions
    "us-iso-east-1": "sns-us-iso-east-1.c2s.ic.gov",
    "us-isob-east-1": "sns-us-isob-east-1.sc2s.sgov.gov",
    "us-isof-east-1": "sns-signing.us-isof-east-1.csp.hci.ic.gov",
    "us-isof-south-1": "sns-signing.us-isof-south-1.csp.hci.ic.gov",
    "eu-isoe-west-1": "sns-signing.eu-isoe-west-1.cloud.adc-e.uk",
    # AWS European Sovereign Cloud
    "eusc-de-east-1": "sns-signing.eusc-de-east-1.amazonaws.eu",
    # opt-in regions of the aws partition
    "af-south-1": "sns-signing.af-south-1.amazonaws.com",
    "ap-east-1": "sns-signing.ap-east-1.amazonaws.com",
    "ap-east-2": "sns-signing.ap-east-2.amazonaws.com",
    "ap-south-2": "sns-signing.ap-south-2.amazonaws.com",
    "ap-southeast-3": "sns-signing.ap-southeast-3.amazonaws.com",
    "ap-southeast-4": "sns-signing.ap-southeast-4.amazonaws.com",
    "ap-southeast-5": "sns-signing.ap-southeast-5.amazonaws.com",
    "ap-southeast-6": "sns-signing.ap-southeast-6.amazonaws.com",
    "ap-southeast-7": "sns-signing.ap-southeast-7.amazonaws.com",
    "ca-west-1": "sns-signing.ca-west-1.amazonaws.com",
    "eu-central-2": "sns-signing.eu-central-2.amazonaws.com",
    "eu-south-1": "sns-signing.eu-south-1.amazonaws.com",
    "eu-south-2": "sns-signing.eu-south-2.amazonaws.com",
    "il-central-1": "sns-signing.il-central-1.amazonaws.com",
    "me-central-1": "sns-signing.me-central-1.amazonaws.com",
    "me-south-1": "sns-signing.me-south-1.amazonaws.com",
    "mx-central-1": "sns-signing.mx-central-1.amazonaws.com",
}


def _botocore_data_file() -> Path | None:
    """botocore's ``data/partitions.json``, located without importing botocore."""
    try:
        spec = importlib.util.find_spec("botocore")
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        path = Path(location, "data", "partitions.json")
        if path.is_file():
            return path
    return None


def _botocore_partitions() -> dict[str, tuple[str, str, frozenset[str]]]:
    """``id -> (dns suffix, region regex, regions)`` from botocore, or nothing if unusable."""
    path = _botocore_data_file()
    if path is None:
        log.info("botocore's partition data was not found; using the built-in partition table")
        return {}
    try:
        document: Any = json.loads(path.read_bytes())
        found = {}
        for entry in document["partitions"]:
            regions = frozenset(str(region) for region in entry.get("regions") or {})
            found[str(entry["id"])] = (
                str(entry["outputs"]["dnsSuffix"]),
                str(entry["regionRegex"]),
                regions,
            )
        return found
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning(
            "botocore's partition data %s could not be read (%s); using the built-in table",
            path,
            type(exc).__name__,
        )
        return {}


@functools.cache
def partitions() -> Mapping[str, Partition]:
    """Every partition we know, by id: botocore's data merged with the built-in table.

    Computed once per process, on first use (the allowlist's construction, at start-up).
    """
    merged: dict[str, Partition] = {}
    from_botocore = _botocore_partitions()
    for partition_id in sorted(set(_BUILTIN_PARTITIONS) | set(from_botocore)):
        builtin = _BUILTIN_PARTITIONS.get(partition_id)
        if partition_id in from_botocore:
            suffix, regex, regions = from_botocore[partition_id]
        else:
            assert builtin is not None
            suffix, regex, regions = builtin[0], builtin[1], frozenset()
        if builtin is not None:
            regions = regions | frozenset(builtin[2])
        try:
            pattern = re.compile(regex, re.ASCII)
        except re.error:
            log.warning("partition %s has an unusable regionRegex; skipped", partition_id)
            continue
        # Only names of the region shape: botocore also lists pseudo-regions ("aws-global").
        real = frozenset(region for region in regions if pattern.fullmatch(region))
        merged[partition_id] = Partition(partition_id, suffix, pattern, real)
    return merged


#: The DNS suffix of each partition in the built-in table (botocore's data may add more).
PARTITION_DOMAINS: Final[Mapping[str, str]] = {
    partition_id: suffix for partition_id, (suffix, _, _) in _BUILTIN_PARTITIONS.items()
}


def partition(partition_id: str) -> Partition | None:
    """The partition named ``partition_id`` (``aws``, ``aws-cn``...), or ``None``."""
    return partitions().get(partition_id)


def aws_certificate_name(partition_id: str, region: str) -> str:
    """The name AWS gives its SNS signing certificate in ``region`` (what the Java SDKs
    expect): the table's entry, else ``sns.<partition's DNS suffix>``."""
    found = partition(partition_id)
    if found is None:
        raise ValueError(f"unknown AWS partition {partition_id!r}")
    special = SIGNING_CERTIFICATE_NAMES.get(region)
    if special is not None and special.endswith(f".{found.dns_suffix}"):
        return special
    return f"sns.{found.dns_suffix}"


def signing_certificate_names(partition_id: str, region: str) -> frozenset[str]:
    """The names a genuine SNS signing certificate for a topic in ``region`` may carry.

    The name AWS uses there (:data:`SIGNING_CERTIFICATE_NAMES`, else ``sns.<suffix>``), plus
    the partition-wide ``sns.<suffix>`` and the regional ``sns.<region>.<suffix>`` (both
    accepted before; still AWS's names). A region the partition data does not list yet also
    accepts ``sns-signing.<region>.<suffix>``, the naming of every region launched since
    2019, so a new region's alerts are not lost. Every name is under the partition's own
    suffix, and the certificate itself is only ever downloaded from the topic region's SNS
    host over verified TLS: the name check is a second line, not the first.
    """
    found = partition(partition_id)
    if found is None:
        return frozenset()
    suffix = found.dns_suffix
    names = {aws_certificate_name(partition_id, region), f"sns.{suffix}", f"sns.{region}.{suffix}"}
    if not found.knows(region):
        names.add(f"sns-signing.{region}.{suffix}")
    return frozenset(names)
