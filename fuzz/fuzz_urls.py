"""atheris entry point: the URL and ARN checks of ``snsmiddleware.policy``
(``certificate_url``, ``subscribe_url``, ``EmulatorEndpoint``, ``parse_topic_arn``).

Run with ``scripts/fuzz urls`` (see fuzz/README.md). Inputs name the check on their first
line (the seeds in ``fuzz/seeds/urls`` show the format); anything else goes through every
check. A URL that is accepted must match the pinned grammar and equal its rebuilt form.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["snsmiddleware", "fuzz"]):
    from fuzz.harnesses import check_urls


def main() -> None:
    atheris.Setup(sys.argv, check_urls)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
