"""Summarise py-spy collapsed stacks (``bench/ingest/run --profile DIR``): the share of samples
each function is on the stack (inclusive) and at the top (self).

    uv run python bench/ingest/stacks.py DIR/single-*.txt [--top 40] [--match events/]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def frame_name(frame: str) -> str:
    """``fn (path/to/file.py:12)`` -> ``fn (to/file.py)``: lines merged, the path shortened."""
    name, _, where = frame.partition(" (")
    path = where.split(":")[0].rstrip(")")
    return f"{name} ({'/'.join(path.split('/')[-2:])})" if path else name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--match", default="", help="only frames containing this text")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            n = int(count)
            total += n
            frames = [frame_name(f) for f in stack.split(";")]
            for name in set(frames):
                inclusive[name] += n
            own[frames[-1]] += n
    print(f"{total} samples")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"--- {title}")
        shown = 0
        for name, n in counter.most_common():
            if args.match in name:
                print(f"{100 * n / total:5.1f}%  {name}")
                shown += 1
                if shown >= args.top:
                    break


if __name__ == "__main__":
    main()
