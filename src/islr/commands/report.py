"""Write an HTML evaluation report of a run: ``islr report RUN_DIR [--data-dir DIR] --out report.html``.

One self-contained file (images embedded): accuracy, top-5 and macro F1 with the split named,
training curves, the most-confused signs and pairs, per-sign accuracy, animated mistakes, model
size, single-thread latency and the exact config. Also saves ``model_stats.json`` in the run
(used by ``islr compare``).
"""

from __future__ import annotations

import argparse

from islr.commands.evaluate import add_run_arguments


def configure(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    parser.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    parser.add_argument("--examples", type=int, default=4, help="animated mistakes to show (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="threads for the latency measurement (default 1)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from islr.evaluation.report import build_report

    out = args.out or str(Path(args.run_dir) / "report.html")
    result = build_report(args.run_dir, out, args.data_dir, args.split, args.checkpoint, args.examples, args.threads)
    m, s = result.metrics, result.stats
    print(f"{m['model']} ({m['framework']}) on {m['split']}: accuracy {m['accuracy']:.4f}  top5 {m['top5']:.4f}  "
          f"macro_f1 {m['macro_f1']:.4f}  n {m['n']}")
    print(f"params {s.parameters:,}  checkpoint {s.checkpoint_mb:.2f} MB  latency {s.latency_ms:.2f} ms/sequence")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {result.path} ({result.images} embedded images)")
    return 0
