"""An independent ESME on PyPI's smpplib: binds to the gateway's listener,
submits one message, waits for the whole reply (all concatenated parts) and
prints it as JSON on stdout: {"parts": [{"data_coding", "esm_class",
"short_message_hex", "source_addr", "destination_addr"}], "submit_status"}.

usage: smpplib_esme.py HOST PORT SYSTEM_ID PASSWORD FROM TO DATA_CODING TEXT
DATA_CODING 8 sends TEXT as UCS-2, 0 as plain ASCII/GSM-7 bytes.
A refused bind prints {"bind_error": STATUS} and exits 0.
"""
import json
import sys
import time

import smpplib.client
import smpplib.consts
import smpplib.exceptions


def main():
    host, port, system_id, password, source, dest, coding, text = sys.argv[1:9]
    coding = int(coding)
    client = smpplib.client.Client(host, int(port), timeout=10)
    parts = []
    expected = [None]

    def received(pdu, **_):
        short_message = pdu.short_message or b""
        esm_class = int(pdu.esm_class or 0)
        parts.append({
            "data_coding": int(pdu.data_coding or 0),
            "esm_class": esm_class,
            "short_message_hex": short_message.hex(),
            "source_addr": pdu.source_addr.decode() if isinstance(pdu.source_addr, bytes) else pdu.source_addr,
            "destination_addr": pdu.destination_addr.decode() if isinstance(pdu.destination_addr, bytes) else pdu.destination_addr,
        })
        if esm_class & 0x40 and len(short_message) >= 6:
            expected[0] = short_message[4]
        else:
            expected[0] = 1

    client.set_message_received_handler(received)
    client.connect()
    try:
        client.bind_transceiver(system_id=system_id, password=password)
    except smpplib.exceptions.PDUError as e:
        print(json.dumps({"bind_error": int(e.args[1])}))
        return
    body = text.encode("utf-16-be") if coding == 8 else text.encode("ascii")
    submit = client.send_message(
        source_addr_ton=smpplib.consts.SMPP_TON_INTL,
        source_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
        source_addr=source,
        dest_addr_ton=smpplib.consts.SMPP_TON_UNK,
        dest_addr_npi=smpplib.consts.SMPP_NPI_UNK,
        destination_addr=dest,
        short_message=body,
        data_coding=coding,
        esm_class=0,
    )
    deadline = time.time() + 10
    while time.time() < deadline and (expected[0] is None or len(parts) < expected[0]):
        client.read_once()
    client.unbind()
    client.disconnect()
    print(json.dumps({"parts": parts, "submit_sequence": submit.sequence}))


if __name__ == "__main__":
    main()
