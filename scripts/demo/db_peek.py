#!/usr/bin/env python3
"""Shows what the coordinator's SQLite database keeps for keys and secret
variables, as a thief would see it: JWE objects whose protected headers are
readable (algorithm, key id, binding) and whose payloads are ciphertext.

  db_peek.py STATE_DIR/coordinator.db
"""
import base64
import json
import sqlite3
import sys


def header(jwe):
    h = jwe.split(".", 1)[0]
    h += "=" * (-len(h) % 4)
    d = json.loads(base64.urlsafe_b64decode(h))
    keep = {k: d[k] for k in ("alg", "enc", "kid", "purpose", "typ") if k in d}
    return json.dumps(keep, separators=(",", ":"))[:110]


def main(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = dict(db.execute("SELECT id, name FROM servers"))
    rows = [
        (f"wrap(P, MK) for {names.get(s, s)}", j)
        for s, j in db.execute("SELECT server_id, jwe FROM master_key_wraps")
    ]
    rows += [
        (f"wrap(P, RK) for {names.get(s, s)}", j)
        for s, j in db.execute("SELECT server_id, jwe FROM release_key_wraps")
    ]
    rows += [("seal(MK, RK)", j) for (j,) in db.execute(
        "SELECT sealed_release_key FROM releases WHERE sealed_release_key IS NOT NULL")]
    rows += [(f"seal(MK, {n})", j) for n, j in db.execute(
        "SELECT name, sealed FROM variables WHERE sealed IS NOT NULL")]
    for what, jwe in rows:
        print(f"{what:<24} {len(jwe):5} chars  header {header(jwe)}")
    plain = db.execute("SELECT name, value FROM variables WHERE value IS NOT NULL").fetchall()
    for n, v in plain:
        print(f"plain variable {n} = {v!r} (not secret: stored as given)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
