"""Plot the dataset: sequences and mean length per sign (PNG), or animated samples of a sign (GIF).

``islr plot distribution DATA_DIR_OR_CSV --out F.png``
``islr plot sign DATA_DIR --sign hello --out F.gif [--n 6]``
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``islr plot`` (one sub-command per kind of plot)."""
    kinds = parser.add_subparsers(dest="kind", required=True, metavar="KIND")
    dist = kinds.add_parser("distribution", help="sequences and mean length per sign (PNG)")
    dist.add_argument("source", type=Path, help="Kaggle folder, or a train.csv-style file")
    dist.add_argument("--out", type=Path, default=Path("distribution.png"), help="PNG file")
    dist.add_argument("--top", type=int, default=20,
                      help="with many signs, bar charts show this many largest and smallest")
    sign = kinds.add_parser("sign", help="animated 2-D landmarks of a few sequences of one sign (GIF)")
    sign.add_argument("data_dir", type=Path, help="Kaggle folder with train.csv and parquet files")
    sign.add_argument("--sign", required=True, help="sign name, e.g. hello")
    sign.add_argument("--out", type=Path, default=None, help="GIF file (default ./<sign>.gif)")
    sign.add_argument("--n", type=int, default=6, help="sequences side by side (default 6)")
    sign.add_argument("--fps", type=int, default=10, help="frames per second (default 10)")


def run(args: argparse.Namespace) -> int:
    """Draw the requested plot and print where it went."""
    from islr.viz import plots

    if args.kind == "distribution":
        out = plots.plot_distribution(args.source, args.out, top=args.top)
    else:
        out = plots.plot_sign(args.data_dir, args.sign, args.out or Path(f"{args.sign}.gif"),
                              n_samples=args.n, fps=args.fps)
    print(f"wrote {out}")
    return 0
