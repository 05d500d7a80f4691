#!/usr/bin/env python3
"""Reads a `custody audit export` file for scripts/demo.sh.

  audit.py master-key FILE         the master key's history: made by whom, shared with whom
  audit.py jobs FILE DEPLOYMENT    the jobs queued for one deployment and who ran them
  audit.py count-jobs FILE DEPLOYMENT
                                   how many jobs were queued for it (a number)
  audit.py tamper FILE OUT         copies FILE with one entry's actor changed
  audit.py summary FILE            entries per action

Server ids are shown with their names (from the server.enroll entries).
"""
import json
import sys


def entries(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                e = json.loads(line)
                if "seq" in e:
                    yield e


def names(path):
    out = {}
    for e in entries(path):
        if e["action"] == "server.enroll":
            out[e["object"].split(":", 1)[1]] = e["detail"].get("name", "?")
    return out


def who(actor, n):
    kind, _, ident = actor.partition(":")
    if kind == "server":
        return f"{n.get(ident, ident)} ({ident[:12]}…)"
    return actor if kind != "user" else f"user {ident[:12]}…"


def master_key(path):
    n = names(path)
    for e in entries(path):
        a = e["action"]
        if a == "master_key.create":
            print(f"#{e['seq']}: owner enabled the first key manager -> master key {e['object'].split(':')[1]} requested")
        elif a == "master_key.created":
            holders = ", ".join(n.get(h, h) for h in e["detail"].get("holders", []))
            print(f"#{e['seq']}: {who(e['actor'], n)} made the master key in its memory and returned it wrapped to: {holders}")
        elif a == "master_key.shared":
            print(f"#{e['seq']}: the master key was shared with {n.get(e['detail'].get('newcomer'), '?')}"
                  " (a holder unwrapped it and re-wrapped it to the newcomer's public key)")
        elif a == "master_key.lost":
            print(f"#{e['seq']}: master key lost (every holder was removed)")


def jobs_of(path, dep):
    created = {}
    for e in entries(path):
        if e["action"] == "job.create":
            spec = (e.get("detail") or {}).get("spec") or {}
            if spec.get("deployment_id") == dep:
                created[e["object"]] = spec.get("type", "?")
    return created


def jobs(path, dep):
    n = names(path)
    created = jobs_of(path, dep)
    if not created:
        print("no job of any kind was queued for this deployment")
        return
    for e in entries(path):
        if e["action"] == "job.result" and e["object"] in created:
            kind = created[e["object"]]
            print(f"#{e['seq']}: {kind:<20} done by {who(e['actor'], n)}: {e['result']}")


def tamper(path, out):
    lines = open(path, encoding="utf-8").read().splitlines()
    for i, line in enumerate(lines):
        e = json.loads(line)
        if e.get("action") == "deployment.create":
            e["actor"] = "user:usr_someone_else"
            lines[i] = json.dumps(e, separators=(",", ":"))
            print(f"changed the actor of entry #{e['seq']} (deployment.create)")
            break
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def summary(path):
    counts = {}
    for e in entries(path):
        counts[e["action"]] = counts.get(e["action"], 0) + 1
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd, path = argv[1], argv[2]
    if cmd == "master-key":
        master_key(path)
    elif cmd == "jobs" and len(argv) == 4:
        jobs(path, argv[3])
    elif cmd == "count-jobs" and len(argv) == 4:
        print(len(jobs_of(path, argv[3])))
    elif cmd == "tamper" and len(argv) == 4:
        tamper(path, argv[3])
    elif cmd == "summary":
        summary(path)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
