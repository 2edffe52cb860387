#!/usr/bin/env python3
"""Seed corpora for orch's fuzz targets, from the repository itself.

    python3 fuzz/seed.py OUT

writes OUT/stack (the stack files of examples/ and the stack texts of the
tests), OUT/template (every string of the tests and examples that holds a
template) and OUT/protocol (request lines of the control protocol: one of
each request, and those the tests send), each with the inputs that once
broke orch (tests/fuzzed/TARGET/). Each file is named by a hash of its
contents, so running it again changes nothing.
"""

import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# A Rust string literal: "..." or b"...", or a raw one, r"..." / r#"..."#.
LITERAL = re.compile(r'b?r(#*)"(.*?)"\1|b?"((?:[^"\\]|\\.)*)"', re.S)
ESCAPE = re.compile(r'\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|\n\s*|.)', re.S)


def unescape(body):
    """The value of a Rust string literal's body (format braces kept as written)."""

    def one(m):
        e = m.group(1)
        if e.startswith("u{"):
            return chr(int(e[2:-1], 16))
        if e.startswith("x"):
            return chr(int(e[1:], 16))
        if e.startswith("\n"):
            return ""
        return {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(e, e)

    return ESCAPE.sub(one, body)


def literals(path):
    text = path.read_text(encoding="utf-8")
    for m in LITERAL.finditer(text):
        if m.group(2) is not None:
            yield m.group(2)
        else:
            yield unescape(m.group(3))


def requests():
    """One line of each request the protocol knows, and a few that it refuses."""
    kinds = [
        {"type": "status", "services": []},
        {"type": "status", "services": ["db", "api"]},
        {"type": "why", "service": "db"},
        {"type": "restart", "services": ["api"], "hard": False},
        {"type": "restart", "services": ["api"], "hard": True},
        {"type": "stop", "services": ["api"]},
        {"type": "start", "services": ["api"]},
        {"type": "down"},
        {"type": "reload"},
    ]
    for request in kinds:
        yield json.dumps({"version": 1, "request": request}) + "\n"
    yield json.dumps({"version": 2, "request": {"type": "down"}}) + "\n"
    yield '{"version": 1, "request": {"type": "status"}}'


def kept(target):
    """The inputs that once broke `target`, as bytes."""
    folder = ROOT / "tests" / "fuzzed" / target
    return [p.read_bytes() for p in sorted(folder.glob("*"))] if folder.is_dir() else []


def write(folder, texts):
    folder.mkdir(parents=True, exist_ok=True)
    names = set()
    for text in texts:
        data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
        name = hashlib.sha1(data).hexdigest()
        (folder / name).write_bytes(data)
        names.add(name)
    return len(names)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = pathlib.Path(sys.argv[1])
    sources = sorted((ROOT / "tests").glob("*.rs")) + sorted((ROOT / "src").rglob("*.rs"))
    strings = [s for path in sources for s in literals(path)]
    examples = sorted((ROOT / "examples").rglob("*.yaml"))
    example_texts = [p.read_text(encoding="utf-8") for p in examples]

    stacks = example_texts + [s for s in strings if "services" in s]
    templates = [s for s in strings if "${" in s or "$$" in s]
    templates += [line for text in example_texts for line in text.splitlines() if "${" in line]
    protocol = list(requests()) + [s for s in strings if '"version"' in s]

    for name, texts in [("stack", stacks), ("template", templates), ("protocol", protocol)]:
        n = write(out / name, texts + kept(name))
        print(f"{out / name}: {n} seeds")


if __name__ == "__main__":
    main()
