#!/usr/bin/env python3
"""Rebuild results.csv, results.md and the PNG plots from a results folder.

    python android_bench/report.py results/
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from android_bench.tables import load_results, make_plots, save_results
    try:
        results = load_results(argv[0])
    except (FileNotFoundError, ValueError) as err:
        print(f"report.py: error: {err}", file=sys.stderr)
        return 2
    save_results(argv[0], results)
    plots = make_plots(argv[0], results)
    print(open(os.path.join(argv[0], "results.md")).read())
    print("plots: " + (", ".join(plots) or "none (no successful rows)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
