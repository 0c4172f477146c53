#!/usr/bin/env python3
"""Reads the gateway's SMS-SUBMIT PDUs (its replies through a modem) with
PyPI smspdudecoder 2.2.0 and compares them with what the test read.

Reads JSON Lines from stdin (tests/modem/modem_channel.rs): each line has
the PDU as the gateway wrote it ("hex", SMSC part first) and the test's
reading of it with gsm-modem's decoder: the recipient ("to", "+" and digits
when international), the part's text ("text") and the concatenation header
("concat": reference, total, sequence, or null). Prints
`compared N PDUs, M mismatches` and every mismatch; exits 1 on any mismatch
or when no PDU came.
"""

import json
import logging
import sys
from io import StringIO

from smspdudecoder.fields import SMSSubmit

logging.getLogger("smspdudecoder").setLevel(logging.ERROR)


def theirs_concat(user_data):
    header = user_data.get("header") or {}
    for element in header.get("elements", []):
        if element["iei"] in (0x00, 0x08):
            data = element["data"]
            return {
                "reference": data["reference"],
                "total": data["parts_count"],
                "sequence": data["part_number"],
            }
    return None


def compare(ours):
    try:
        theirs = SMSSubmit.decode(StringIO(ours["hex"]))
    except Exception as error:  # noqa: BLE001 - any failure is a mismatch
        return [f"smspdudecoder raised {error!r}"]
    problems = []
    if theirs["header"]["mti"] != "submit":
        problems.append(f"not an SMS-SUBMIT: {theirs['header']}")
    recipient = theirs["recipient"]
    number = recipient["number"]
    if recipient["toa"]["ton"] == "international":
        number = "+" + number
    if number != ours["to"]:
        problems.append(f"recipient: ours {ours['to']!r}, theirs {number!r} ({recipient['toa']})")
    text = theirs["user_data"]["data"]
    if text != ours["text"]:
        problems.append(f"text: ours {ours['text']!r}, theirs {text!r}")
    concat = theirs_concat(theirs["user_data"])
    if concat != ours["concat"]:
        problems.append(f"concat: ours {ours['concat']}, theirs {concat}")
    return problems


def main():
    compared = 0
    mismatches = []
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        compared += 1
        ours = json.loads(line)
        problems = compare(ours)
        if problems:
            mismatches.append((ours["hex"], problems))
    print(f"compared {compared} PDUs, {len(mismatches)} mismatches")
    for hex_text, problems in mismatches:
        print(hex_text)
        for problem in problems:
            print(f"    {problem}")
    return 1 if mismatches or compared == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
