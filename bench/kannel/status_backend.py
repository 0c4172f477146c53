#!/usr/bin/env python3
"""The HTTP status backend behind Kannel's smsbox in bench/kannel-vs-motcua.sh.

This is how provinces answer dossier lookups with Kannel: an sms-service
`get-url` calls a small web service with the sender and the text, and the
response body is the reply. This one is kept simple and fair:

- a multi-threaded HTTP/1.1 server (keep-alive, one thread per connection),
- one SQLite connection per thread, reading a database built at start from
  a JSON Lines file in the national portal's shape (MaHoSo, TenTTHC, ...),
- the code found with a regular expression (any case, dots, spaces, commas,
  underscores, slashes or dashes between the groups), looked up by primary
  key, and answered in unaccented Vietnamese (GSM-7, one SMS), like
  motcua-sms with `reply.accents = false`.

Usage: status_backend.py --dossiers docs/sample-dossiers.jsonl --db /tmp/x.db --port 8090
"""

import argparse
import json
import re
import sqlite3
import threading
import unicodedata
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STATUS = [
    "Moi dang ky",
    "Duoc tiep nhan",
    "Khong duoc tiep nhan",
    "Dang xu ly",
    "Yeu cau bo sung giay to",
    "Yeu cau thuc hien nghia vu tai chinh",
    "Cong dan yeu cau rut ho so",
    "Dung xu ly",
    "Da xu ly xong",
    "Da tra ket qua",
]
SEP = r"[\s.,_/:\-]*"
CODE = re.compile(
    r"(?<![A-Z0-9])((?:[A-Z0-9]{3}" + SEP + r")?[A-Z0-9]{2}" + SEP + r"[A-Z0-9]{2}" + SEP
    + r"[A-Z][0-9]{2})" + SEP + r"([0-9]{6})" + SEP + r"([0-9]{1,4})(?![0-9])"
)
SPLIT = re.compile(r"[\s.,_/:\-]+")
KEYWORD = re.compile(r"^\s*(TRA CUU( HO SO)?|MA HO SO|MHS|TC|HS)\W*")
SERVICE = "8058"
EXAMPLE = "000.00.12.H58-240315-0007"


def fold(text):
    """Unaccented upper case (đ → D)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).upper()


def canonical(agency, date, order):
    groups = [g for g in SPLIT.split(agency) if g]
    if len(groups) == 1:  # typed with no separators
        a = groups[0]
        groups = [a[:3], a[3:5], a[5:7], a[7:]] if len(a) == 10 else [a[:2], a[2:4], a[4:]]
    return "%s-%s-%04d" % (".".join(groups), date, int(order))


def date_of(portal):
    """20240329170000 → 29/03/2024."""
    if not portal or len(portal) < 8:
        return ""
    return "%s/%s/%s" % (portal[6:8], portal[4:6], portal[0:4])


def build_db(dossiers, path):
    db = sqlite3.connect(path)
    db.execute("DROP TABLE IF EXISTS dossier")
    db.execute(
        "CREATE TABLE dossier (code TEXT PRIMARY KEY, procedure TEXT, status INTEGER,"
        " due TEXT, finished TEXT)"
    )
    with open(dossiers, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            db.execute(
                "INSERT OR REPLACE INTO dossier VALUES (?, ?, ?, ?, ?)",
                (
                    r["MaHoSo"].upper(),
                    fold(r.get("TenTTHC", "")).capitalize(),
                    int(r.get("TrangThaiHoSo", 0)),
                    r.get("NgayHenTra", ""),
                    r.get("NgayKetThucXuLy", ""),
                ),
            )
    db.commit()
    db.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    local = threading.local()
    db_path = None

    def db(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True)
            self.local.conn = conn
        return conn

    def answer(self, text):
        m = CODE.search(KEYWORD.sub("", fold(text)))
        if not m:
            return "Tra cuu ho so: soan TC <ma ho so> gui %s. VD: TC %s" % (SERVICE, EXAMPLE)
        code = canonical(m.group(1), m.group(2), m.group(3))
        row = self.db().execute(
            "SELECT procedure, status, due, finished FROM dossier WHERE code = ?", (code,)
        ).fetchone()
        if row is None:
            return "Khong tim thay ho so %s. Kiem tra lai ma tren giay bien nhan." % code
        procedure, status, due, finished = row
        label = STATUS[status - 1] if 1 <= status <= 10 else "Khong ro"
        if status >= 9 and finished:
            state = "%s ngay %s" % (label, date_of(finished))
        elif due:
            state = "%s, hen tra %s" % (label, date_of(due))
        else:
            state = label
        head = "HS %s\n" % code
        tail = "\n" + state
        room = 160 - len(head) - len(tail)
        if len(procedure) > room:
            procedure = procedure[: max(room - 3, 0)] + "..."
        return head + procedure + tail

    def do_GET(self):
        query = parse_qs(urlsplit(self.path).query)
        text = query.get("text", [""])[0]
        body = self.answer(text).encode("utf-8")
        self.send_response(200)
        # No charset: the reply is ASCII, which smsbox sends as GSM-7.
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--dossiers", required=True)
    p.add_argument("--db", required=True)
    p.add_argument("--port", type=int, default=8090)
    a = p.parse_args()
    build_db(a.dossiers, a.db)
    Handler.db_path = a.db
    # The default listen backlog (5) drops connections when smsbox opens
    # many at once, and each dropped SYN costs a retransmission (1 s, 3 s, ...).
    ThreadingHTTPServer.request_queue_size = 1024
    server = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
