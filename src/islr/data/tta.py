"""Test-time augmentation (numpy only): the mean of the logits of a sequence and its mirror.

``mirror`` flips the PREPARED landmarks (``x -> 1 - x`` with the left/right swap of the run's
landmark subset) before :func:`islr.data.preprocess.featurize`, exactly as the training mirror
augmentation does (:meth:`islr.data.augment.Augmenter.mirror`). Every path that applies TTA
(run predictors, ensembles, exported graphs, ``islr cv``) uses :func:`mirror_prepared` or
:func:`mirror_map`, so they agree.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from islr.config import AugmentConfig, PreprocessConfig, to_dict
from islr.errors import ConfigError

TTA_MODES = ("none", "mirror")


def check_tta(mode: str) -> str:
    """``mode`` if it is a known TTA mode, else :class:`ConfigError`."""
    if mode not in TTA_MODES:
        raise ConfigError(f"--tta: {mode!r} is not one of {list(TTA_MODES)}")
    return mode


@lru_cache(maxsize=32)
def _augmenter(frozen: str):  # noqa: ANN202 - an Augmenter, imported lazily below
    import json

    from islr.config import from_dict
    from islr.data.augment import Augmenter

    return Augmenter.for_preprocess(AugmentConfig(), from_dict(PreprocessConfig, json.loads(frozen)))


def _mirror_augmenter(cfg: PreprocessConfig):  # noqa: ANN202
    import json

    return _augmenter(json.dumps(to_dict(cfg), sort_keys=True))


def mirror_map(cfg: PreprocessConfig) -> tuple[np.ndarray, int | None]:
    """``(permutation of the prepared points, position of x among the coords or None)``."""
    coords = tuple(cfg.coords)
    return _mirror_augmenter(cfg).mirror_perm.copy(), coords.index("x") if "x" in coords else None


def mirror_prepared(seq: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """The horizontal mirror of one prepared ``(L, P, C)`` sequence (a new array)."""
    return _mirror_augmenter(cfg).mirror(np.asarray(seq, np.float32))


def mirrored_features(raw: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """Features of the mirror of raw ``(frames, 543, 3)`` landmarks: featurize(mirror(prepare(raw)))."""
    from islr.data.preprocess import featurize, prepare

    return featurize(mirror_prepared(prepare(raw, cfg), cfg), cfg)


def mirror_raw(raw: np.ndarray) -> np.ndarray:
    """The mirror of raw ``(frames, 543, 3)`` landmarks (for graphs that take raw frames).

    Equal to mirroring after :func:`islr.data.preprocess.prepare`: selection, gap filling and
    frame dropping commute with the flip because every named subset is closed under it.
    """
    from islr.data.landmarks import FULL_MIRROR

    flipped = np.array(np.asarray(raw, np.float32)[:, FULL_MIRROR], copy=True)
    flipped[..., 0] = 1.0 - flipped[..., 0]
    return flipped
