"""Write a learnable synthetic dataset in Kaggle layout: ``islr synth OUT_DIR --signs 20``.

Each sign gets its own hand path, handshape and hand use; each participant their own place,
size, speed and handedness, so models can be tested on unseen signers without the real data.
Deterministic in ``--seed``.

``islr synth OUT_DIR --like train.csv [--fraction F]`` writes a replica instead: one synthetic
recording for each row of a real train.csv (same participants, sequence ids, signs and counts per
participant and sign; a stratified sample with ``--fraction``), lengths drawn from frame counts
measured on genuine files (see :mod:`islr.data.replica`).
"""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to create (train.csv, sign map, parquet files)")
    parser.add_argument("--signs", type=int, default=10, help="number of signs (default 10)")
    parser.add_argument("--participants", type=int, default=5, help="number of signers (default 5)")
    parser.add_argument("--per-sign", type=int, default=4, help="recordings per sign and signer (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-frames", type=int, default=10)
    parser.add_argument("--max-frames", type=int, default=48)
    parser.add_argument("--sign-names-from", metavar="DIR",
                        help="take sign names, in index order, from DIR's sign map (default sign000, ...)")
    parser.add_argument("--workers", type=int, default=0, help="processes writing files (0 = all cores)")
    parser.add_argument("--like", metavar="CSV",
                        help="replicate this train.csv: its participants, sequence ids, signs and counts "
                             "(--signs, --participants, --per-sign and the frame limits are then unused)")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="with --like: keep this stratified fraction of each participant/sign cell "
                             "(default 1)")


def run(args: argparse.Namespace) -> int:
    from islr.data.kaggle import read_sign_map
    from islr.data.synthetic import generate
    from islr.errors import ConfigError

    names = None
    if args.sign_names_from:
        mapping = read_sign_map(args.sign_names_from)
        names = [name for name, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
        if len(names) < args.signs:
            raise ConfigError(f"{args.sign_names_from} has {len(names)} signs, fewer than --signs {args.signs}")
    if args.like:
        return _replica(args, names)
    if args.fraction != 1.0:
        raise ConfigError("--fraction needs --like")
    try:
        info = generate(args.out_dir, args.signs, args.participants, args.per_sign, args.seed,
                        args.min_frames, args.max_frames, sign_names=names, workers=args.workers)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(f"wrote {info.files} files: {len(info.signs)} signs x {len(info.participants)} participants "
          f"x {args.per_sign} to {info.out_dir}")
    print(f"participants: {info.participants} (left-handed: {info.left_handed or 'none'})")
    return 0


def _replica(args: argparse.Namespace, names: list[str] | None) -> int:
    import sys

    from islr.data.replica import generate_replica

    info = generate_replica(args.out_dir, args.like, args.fraction, args.seed, args.workers,
                            progress=sys.stderr.isatty(), sign_names=names)
    print(f"wrote {info.files} files like {args.like}: {len(info.signs)} signs x "
          f"{len(info.participants)} participants, {info.lengths[0]} to {info.lengths[1]} frames, to {info.out_dir}")
    return 0
