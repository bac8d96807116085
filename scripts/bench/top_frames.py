"""Summarise py-spy collapsed stacks: the share of samples under each function (inclusive) and on top (self).

    python scripts/bench/top_frames.py /tmp/profile/*.txt --limit 40
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--match", default="", help="Only count stacks containing this text.")
    args = parser.parse_args()
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for path in args.files:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or (args.match and args.match not in stack):
                continue
            count = int(count_text)
            total += count
            frames = stack.split(";")
            for frame in set(frames):
                inclusive[frame] += count
            self_time[frames[-1]] += count
    print(f"{total} samples")
    print("inclusive:")
    for frame, count in inclusive.most_common(args.limit):
        print(f"  {100 * count / total:5.1f}%  {frame}")
    print("self:")
    for frame, count in self_time.most_common(args.limit // 2):
        print(f"  {100 * count / total:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
