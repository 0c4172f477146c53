#!/usr/bin/env python3
"""Compares gsm-modem's reading of SMS-DELIVER PDUs with smspdudecoder's.

Reads JSON Lines from stdin (`cargo run -p gsm-modem --example pdu_corpus`):
each line has the PDU as "hex" and gsm-modem's reading of it ("sender",
"toa", "text" or "data_hex", "timestamp" with its offset, "concat", "dcs").
Decodes each hex with smspdudecoder 2.2.0 (pip install smspdudecoder==2.2.0;
it needs bitstring < 5, which dropped the BitStream class it imports) and
compares sender, text or data, time stamp (the same instant: smspdudecoder
converts to UTC) and the concatenation fields.

smspdudecoder is demonstrably wrong on three classes of input; for those
the affected field alone is not compared (the others still are), and each
class is counted in the summary:

- alnum-padding: an alphanumeric sender whose octets end in 7 or more spare
  bits (7, 15, ... characters). smspdudecoder decodes every septet the
  octets could hold instead of the floor(4 * length / 7) the semi-octet
  length declares, so it appends an '@' ("Viettel" -> "Viettel@").
- gsm7-escape-shift: GSM-7 user data with an escape (0x1B) among the
  header's septets, or with an extension character in the text and 7 or
  more spare bits at the end. smspdudecoder decodes the whole user data,
  header included, as text and then slices the characters by septet
  positions; each escape pair is one character for two septets, so the
  slice shifts ("€abcde" in 7 septets -> "€abcde@").
- dcs-group: a data coding scheme whose group is not the general one nor
  1111, where the group changes what bits 3-2 mean (TS 23.038 §4: message
  waiting 1100/1101 are GSM-7 and 1110 UCS-2 whatever bits 3-2 say).
  smspdudecoder reads bits 3-2 whatever the group (0xD8, a voicemail
  indication in GSM-7, is read as UCS-2 and fails).

Prints `compared N PDUs, M mismatches`, every mismatch, the excluded
fields per class; exits 1 on any mismatch or when fewer than 1000 PDUs were compared in
every field.
"""

import json
import logging
import sys
from datetime import datetime
from io import StringIO

from smspdudecoder.fields import SMSDeliver

MIN_PDUS = 1000

# smspdudecoder logs a warning for each UCS-2 body it finds short (the
# dcs-group class); the summary says all there is to say.
logging.getLogger("smspdudecoder").setLevel(logging.ERROR)


def unpack_septets(octets, count):
    bits = int.from_bytes(octets, "little")
    return [(bits >> (7 * i)) & 0x7F for i in range(count)]


def standard_alphabet(dcs):
    """TS 23.038 §4 (compressed text read as 8-bit)."""
    group = dcs >> 4
    if group <= 7:
        if dcs & 0x20:
            return "binary"
        return {1: "binary", 2: "ucs2"}.get((dcs >> 2) & 3, "gsm")
    if group == 0xE:
        return "ucs2"
    if group == 0xF:
        return "binary" if dcs & 0x04 else "gsm"
    return "gsm"


def smspdudecoder_alphabet(dcs):
    """What smspdudecoder.fields.DCS makes of it: bits 3-2 only."""
    return {1: "binary", 2: "ucs2"}.get((dcs >> 2) & 3, "gsm")


def known_defects(pdu):
    """The defect classes (see the module doc) this PDU falls in."""
    classes = set()
    pos = 1 + pdu[0]  # service centre address
    first = pdu[pos]
    pos += 1
    length, toa = pdu[pos], pdu[pos + 1]
    octets = (length + 1) // 2
    if toa & 0x70 == 0x50 and octets * 8 - (length * 4 // 7) * 7 >= 7:
        classes.add("alnum-padding")
    pos += 2 + octets
    dcs = pdu[pos + 1]
    pos += 2 + 7
    udl = pdu[pos]
    ud = pdu[pos + 1:]
    if standard_alphabet(dcs) != smspdudecoder_alphabet(dcs):
        classes.add("dcs-group")
    elif standard_alphabet(dcs) == "gsm":
        ud_octets = (udl * 7 + 7) // 8
        septets = unpack_septets(ud[:ud_octets], udl)
        header_septets = ((ud[0] + 1) * 8 + 6) // 7 if first & 0x40 else 0
        spare = ud_octets * 8 - udl * 7
        if 0x1B in septets[:header_septets] or (
            0x1B in septets[header_septets:] and spare >= 7
        ):
            classes.add("gsm7-escape-shift")
    return classes


def theirs_concat(user_data):
    header = user_data.get("header") or {}
    found = None
    for element in header.get("elements", []):
        if element["iei"] in (0x00, 0x08) and found is None:
            data = element["data"]
            found = {
                "reference": data["reference"],
                "total": data["parts_count"],
                "sequence": data["part_number"],
            }
    return found


def compare(line):
    """The mismatches of one line, and the fields excluded by class."""
    ours = json.loads(line)
    pdu = bytes.fromhex(ours["hex"])
    defects = known_defects(pdu)
    try:
        theirs = SMSDeliver.decode(StringIO(ours["hex"]))
    except Exception as error:  # noqa: BLE001 - any failure is a mismatch
        if "dcs-group" in defects:
            return [], {"dcs-group": "whole PDU (smspdudecoder raised)"}
        return [f"smspdudecoder raised {error!r}"], {}
    problems, excluded = [], {}

    sender = theirs["sender"]["number"]
    if "alnum-padding" in defects:
        excluded["alnum-padding"] = "sender"
    elif sender != ours["sender"]:
        problems.append(f"sender: ours {ours['sender']!r}, theirs {sender!r}")

    data = theirs["user_data"]["data"]
    body_class = next((c for c in ("dcs-group", "gsm7-escape-shift") if c in defects), None)
    if body_class:
        excluded[body_class] = "body"
    elif "data_hex" in ours:
        if not isinstance(data, bytes) or data.hex().upper() != ours["data_hex"]:
            problems.append(f"data: ours {ours['data_hex']}, theirs {data!r}")
    elif data != ours["text"]:
        problems.append(f"text: ours {ours['text']!r}, theirs {data!r}")

    our_time = datetime.fromisoformat(ours["timestamp"])
    if theirs["scts"] != our_time:
        problems.append(f"timestamp: ours {ours['timestamp']}, theirs {theirs['scts'].isoformat()}")

    concat = theirs_concat(theirs["user_data"])
    if concat != ours["concat"]:
        problems.append(f"concat: ours {ours['concat']}, theirs {concat}")
    return problems, excluded


def main():
    compared = 0
    in_full = 0
    mismatches = []
    excluded_counts = {}
    for number, line in enumerate(sys.stdin, 1):
        line = line.strip()
        if not line:
            continue
        compared += 1
        try:
            problems, excluded = compare(line)
        except Exception as error:  # noqa: BLE001 - a broken line is a mismatch
            problems, excluded = [f"could not compare: {error!r}"], {}
        if not excluded:
            in_full += 1
        for cls, field in excluded.items():
            excluded_counts[(cls, field)] = excluded_counts.get((cls, field), 0) + 1
        if problems:
            hex_text = json.loads(line).get("hex", "?") if line.startswith("{") else line
            mismatches.append((number, hex_text, problems))
    print(f"compared {compared} PDUs ({in_full} in every field), {len(mismatches)} mismatches")
    for number, hex_text, problems in mismatches:
        print(f"line {number}: {hex_text}")
        for problem in problems:
            print(f"    {problem}")
    for (cls, field), count in sorted(excluded_counts.items()):
        print(f"not compared (known smspdudecoder defect {cls}): {field} of {count} PDUs")
    if in_full < MIN_PDUS:
        print(f"too few PDUs compared in every field: {in_full} < {MIN_PDUS}")
        return 1
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
