#!/usr/bin/env python3
"""Writes a man page for a clap-based binary from its own --help output.

    gen-man.py BINARY SECTION OUT.gz [--name NAME] [--version VERSION]

help2man-style: runs `BINARY --help`, then `BINARY SUB --help` for every
subcommand listed (recursively), and turns clap's "Usage:", "Commands:",
"Arguments:" and "Options:" blocks into roff. It needs nothing but the
binary, so it works for every binary whatever crate defines its clap
command (clap_mangen needs the `Command` value, which the binaries keep
private). Output is reproducible: the date is SOURCE_DATE_EPOCH (or the
last commit's date), and gzip stores no name or time.
"""

import argparse
import datetime
import gzip
import os
import re
import subprocess
import sys

SECTION_TITLES = ("Usage:", "Commands:", "Arguments:", "Options:")


def run_help(binary, words):
    out = subprocess.run(
        [binary, *words, "--help"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "100"},
    )
    return out.stdout


def parse(text):
    """Splits clap help into (about, usage, {section: [(term, desc)]})."""
    about, usage, sections, current = [], "", {}, None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("Usage:"):
            usage = stripped[len("Usage:"):].strip()
            current = "Usage"
            continue
        if stripped in SECTION_TITLES:
            current = stripped[:-1]
            sections[current] = []
            continue
        if current is None:
            about.append(line)
            continue
        if current == "Usage" or not stripped:
            continue
        entry = re.match(r"^\s{1,6}(\S.*?)(?:\s{2,}(.*))?$", line)
        indent = len(line) - len(line.lstrip())
        if entry and indent <= 6:
            sections[current].append([entry.group(1), entry.group(2) or ""])
        elif sections[current]:
            # continuation of the previous description
            sep = " " if sections[current][-1][1] else ""
            sections[current][-1][1] += sep + stripped
    return "\n".join(about).strip(), usage, sections


def roff(text):
    text = text.replace("\\", "\\e").replace("-", "\\-")
    lines = []
    for line in text.split("\n"):
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    return "\n".join(lines)


def term(t):
    # Bold the flags, keep <VALUE> placeholders italic.
    parts = re.split(r"(<[^>]+>|\[[^\]]+\])", t)
    out = []
    for p in parts:
        if not p:
            continue
        if p.startswith("<") or p.startswith("["):
            out.append("\\fI" + roff(p) + "\\fR")
        else:
            out.append("\\fB" + roff(p) + "\\fR")
    return "".join(out)


def describe(binary, words, name, depth, out):
    about, usage, sections = parse(run_help(binary, words))
    title = " ".join([name, *words])
    if words:
        out.append(f'.SS "{roff(title)}"')
        if about:
            out.append(roff(about))
            out.append(".PP")
        out.append(f"\\fBUsage:\\fR {roff(usage)}")
    for key in ("Arguments", "Options"):
        entries = sections.get(key, [])
        if words and entries:
            out.append(".PP")
            out.append(f"\\fI{key}:\\fR")
        for t, d in entries:
            if words and t in ("-h, --help", "-h, --help "):
                continue
            out.append(".TP")
            out.append(term(t))
            out.append(roff(d))
    subcommands = [t for t, _ in sections.get("Commands", []) if t != "help"]
    return about, usage, subcommands


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("section")
    ap.add_argument("output")
    ap.add_argument("--name")
    ap.add_argument("--version", default="")
    a = ap.parse_args()
    name = a.name or os.path.basename(a.binary)

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if not epoch:
        try:
            epoch = subprocess.run(
                ["git", "log", "-1", "--format=%ct"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            epoch = "0"
    date = datetime.datetime.fromtimestamp(int(epoch or 0), datetime.timezone.utc)

    top = []
    about, usage, subcommands = describe(a.binary, [], name, 0, top)
    first_line = about.split("\n")[0] if about else name
    page = [
        f'.TH "{name.upper()}" "{a.section}" "{date:%Y-%m-%d}" '
        f'"{roff(name)} {roff(a.version)}" "Custody"',
        ".SH NAME",
        f"{roff(name)} \\- {roff(first_line)}",
        ".SH SYNOPSIS",
        f"\\fB{roff(name)}\\fR {roff(usage.split(' ', 1)[1] if ' ' in usage else '')}",
    ]
    rest = about.split("\n", 1)[1].strip() if "\n" in about else ""
    if rest:
        page += [".SH DESCRIPTION", roff(rest)]
    page += [".SH OPTIONS", *top]

    if subcommands:
        page.append(".SH COMMANDS")
        queue = [[s] for s in subcommands]
        while queue:
            words = queue.pop(0)
            _, _, subs = describe(a.binary, words, name, len(words), page)
            if len(words) < 3:
                queue[0:0] = [words + [s] for s in subs]

    page += [
        ".SH SEE ALSO",
        "custody(1), custody\\-agent(8), custody\\-coordinator(8); "
        "/usr/share/doc/custody\\-agent/HARDENING.md",
    ]
    data = ("\n".join(page) + "\n").encode()
    with open(a.output, "wb") as f:
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0, compresslevel=9) as gz:
            gz.write(data)


if __name__ == "__main__":
    sys.exit(main())
