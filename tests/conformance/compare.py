"""Compares what every language x transport cell left in the local store, and prints the
table and the closing `N passed, M failed` line.

Usage: compare.py RESULTS
RESULTS is the tab-separated file tests/run.sh writes, one line per cell:
`language  transport  exit-code  run-dir`. Standard library only (it runs even when the
Python client's venv could not be built).

A cell passes when its program exited 0 and its run directory, normalized, is
byte-identical to the reference: the normalized content that most of the cells whose
program passed share (ties: the first such cell in table order). Normalizing removes
only wall-clock fields, as whole members of the top-level JSON object of each line or
file, leaving every other byte as the sidecar wrote it:

  history.jsonl  `_runtime`, `_timestamp` of every row
  summary.json   `_runtime`, `_timestamp` (the last row's)
  alerts.jsonl   `_runtime`, `_timestamp`, `throttled_until`
  config.json    nothing
  files/         nothing: every saved file, by path and bytes
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections import Counter

WALL_CLOCK = {
    "history.jsonl": {"_runtime", "_timestamp"},
    "summary.json": {"_runtime", "_timestamp"},
    "alerts.jsonl": {"_runtime", "_timestamp", "throttled_until"},
    "config.json": set(),
}
LANGUAGES = ["python", "go", "node", "java"]
TRANSPORTS = ["tcp", "unix"]
_decoder = json.JSONDecoder()


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def strip_members(text: str, drop: set[str]) -> str:
    """`text` (one JSON object) without its top-level members named in `drop`.

    Every other byte stays: kept members, and the separator that preceded each kept
    member in the original, verbatim. Raises ValueError on anything but an object.
    """
    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "{":
        raise ValueError(f"not a JSON object: {text[:40]!r}")
    i = _skip_ws(text, i + 1)
    members: list[tuple[int, int, str]] = []  # (start, end, key)
    if text[i] != "}":
        while True:
            start = i
            key, i = _decoder.raw_decode(text, i)
            if not isinstance(key, str):
                raise ValueError(f"bad key at {start}")
            i = _skip_ws(text, i)
            if text[i] != ":":
                raise ValueError(f"expected ':' at {i}")
            _, i = _decoder.raw_decode(text, _skip_ws(text, i + 1))
            members.append((start, i, key))
            i = _skip_ws(text, i)
            if text[i] == ",":
                i = _skip_ws(text, i + 1)
            elif text[i] == "}":
                break
            else:
                raise ValueError(f"expected ',' or '}}' at {i}")
    if _skip_ws(text, i + 1) != len(text):
        raise ValueError("trailing data after the object")
    if not members:
        return text
    out = [text[: members[0][0]]]
    first = True
    for n, (start, end, key) in enumerate(members):
        if key in drop:
            continue
        if not first:
            out.append(text[members[n - 1][1] : start])
        out.append(text[start:end])
        first = False
    out.append(text[members[-1][1] :])
    return "".join(out)


def normalize(run_dir: str) -> dict[str, str]:
    """The compared content of a run directory: name -> normalized text."""
    out: dict[str, str] = {}
    for name, drop in WALL_CLOCK.items():
        path = os.path.join(run_dir, name)
        if not os.path.exists(path):
            out[name] = "<missing>\n"
            continue
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
        try:
            if name.endswith(".jsonl"):
                out[name] = "\n".join(strip_members(line, drop) if line else line for line in text.split("\n"))
            else:
                out[name] = strip_members(text, drop)
        except ValueError as e:
            out[name] = f"<unparsable: {e}>\n{text}"
    files = os.path.join(run_dir, "files")
    for root, _, names in sorted(os.walk(files)):
        for n in sorted(names):
            path = os.path.join(root, n)
            with open(path, "rb") as f:
                out[f"files/{os.path.relpath(path, files)}"] = f.read().decode("utf-8", "backslashreplace")
    return out


def main() -> int:
    if len(sys.argv) != 2:
        sys.exit("usage: compare.py RESULTS")
    cells: dict[tuple[str, str], tuple[int, str]] = {}
    with open(sys.argv[1], encoding="utf-8") as f:
        for line in f:
            if line.strip():
                lang, transport, rc, run_dir = line.rstrip("\n").split("\t")
                cells[(lang, transport)] = (int(rc), run_dir)
    order = [(lang, t) for lang in LANGUAGES for t in TRANSPORTS if (lang, t) in cells]

    content: dict[tuple[str, str], dict[str, str] | None] = {}
    for cell in order:
        run_dir = cells[cell][1]
        content[cell] = normalize(run_dir) if os.path.isdir(run_dir) else None

    def key(c: dict[str, str]) -> str:
        return json.dumps(c, sort_keys=True)

    candidates = [c for c in order if cells[c][0] == 0 and content[c] is not None]
    counts = Counter(key(content[c]) for c in candidates)  # type: ignore[arg-type]
    reference = None
    if candidates:
        best = max(counts.values())
        reference = next(c for c in candidates if counts[key(content[c])] == best)  # type: ignore[arg-type]
        print(f"reference store content: {reference[0]}/{reference[1]} "
              f"(shared by {best} of {len(candidates)} cells whose program passed)")

    verdict: dict[tuple[str, str], str] = {}
    for cell in order:
        rc, _ = cells[cell]
        why = []
        if rc != 0:
            why.append(f"exit {rc}" if rc != 124 else "timed out")
        got = content[cell]
        if got is None:
            why.append("no run dir")
        elif reference is None:
            why.append("nothing to compare with")
        elif cell != reference and got != content[reference]:
            ref = content[reference]
            assert ref is not None
            differing = sorted(n for n in set(got) | set(ref) if got.get(n) != ref.get(n))
            why.append("store differs: " + ", ".join(differing))
            if rc == 0:  # a failed program's partial run is explained by its own log
                for n in differing:
                    diff = difflib.unified_diff(
                        ref.get(n, "<absent>\n").splitlines(keepends=True),
                        got.get(n, "<absent>\n").splitlines(keepends=True),
                        f"{reference[0]}-{reference[1]}/{n}", f"{cell[0]}-{cell[1]}/{n}")
                    sys.stdout.writelines(diff)
                    print()
        verdict[cell] = "PASS" if not why else "FAIL (" + "; ".join(why) + ")"

    width = max([len(v) for v in verdict.values()] + [4]) + 2
    print()
    print("language  " + "".join(t.ljust(width) for t in TRANSPORTS).rstrip())
    for lang in LANGUAGES:
        if any((lang, t) in cells for t in TRANSPORTS):
            row = "".join(verdict.get((lang, t), "-").ljust(width) for t in TRANSPORTS)
            print(lang.ljust(10) + row.rstrip())
    passed = sum(v == "PASS" for v in verdict.values())
    print(f"{passed} passed, {len(verdict) - passed} failed")
    return 0 if passed == len(verdict) else 1


if __name__ == "__main__":
    sys.exit(main())
