"""atheris entry point: the SNS envelope parser (``snsmiddleware.message.parse_message``).

Run with ``scripts/fuzz message`` (see fuzz/README.md); any exception other than a 400
``MessageFormatError``, or a broken invariant of :func:`fuzz.harnesses.check_message`, is a
crash and libFuzzer writes the input that caused it to ``crash-<sha1>``.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["snsmiddleware", "fuzz"]):
    from fuzz.harnesses import check_message


def main() -> None:
    atheris.Setup(sys.argv, check_message)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
