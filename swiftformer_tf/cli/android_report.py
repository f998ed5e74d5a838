#!/usr/bin/env python3
"""Rebuild results.csv, results.md and the PNG plots from a results folder.

    swiftformer-android-report results/
"""

import os
import sys



def report(argv):
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    from swiftformer_tf.android_bench.tables import load_results, make_plots, save_results
    results = load_results(argv[0])
    save_results(argv[0], results)
    plots = make_plots(argv[0], results)
    print(open(os.path.join(argv[0], "results.md")).read())
    print("plots: " + (", ".join(plots) or "none (no successful rows)"))
    return 0


def main(argv=None):
    from swiftformer_tf.io_utils import run_command
    return run_command("swiftformer-android-report", report, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
