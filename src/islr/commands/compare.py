"""Compare runs in one Markdown table: ``islr compare RUN_DIR... [--out table.md]``.

Columns: model, framework, split (signer-independent or not), accuracy, top-5, macro F1,
parameters, mean epoch time and single-thread latency. Metrics are read from metrics.json or
test_metrics.json; parameters and latency from model_stats.json (``islr report`` writes it), or
measured now with ``--measure``. Paths that are not runs (``runs/tune``, a CV folder) are
skipped with a line on stderr. A folder written by ``islr evaluate MODEL.tflite --sign-map F
--data-dir D --out DIR`` compares beside the runs (an exported or community model).
"""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="run directories (or `islr evaluate --out` folders)")
    parser.add_argument("--out", help="write the Markdown table here (default: print it)")
    parser.add_argument("--json", help="also write the rows as JSON here")
    parser.add_argument("--measure", action="store_true", help="measure params/latency where model_stats.json is missing")
    parser.add_argument("--sort", default="accuracy", choices=("accuracy", "top5", "macro_f1", "run"))


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from islr.evaluation.compare import compare_runs, markdown_table, rows_json

    skipped: list[tuple[str, str]] = []
    rows = compare_runs(args.run_dirs, measure=args.measure, sort=args.sort, skipped=skipped)
    for path, reason in skipped:
        print(f"skipped {path}: {reason}", file=sys.stderr)
    text = markdown_table(rows)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"wrote {args.out} ({len(rows)} runs)")
    print(text, end="")
    if args.json:
        Path(args.json).write_text(rows_json(rows))
    return 0
