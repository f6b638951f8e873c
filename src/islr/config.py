"""Configuration as dataclasses: defaults with docstrings, YAML files and dotted CLI overrides.

``load_config("configs/experiments/x.yaml", ["train.lr=3e-4"])`` returns an :class:`ExperimentConfig`;
``to_dict`` / ``from_dict`` round-trip it so a run directory can save the resolved config.
Nothing here imports a deep learning framework.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from islr.errors import ConfigError

#: Named landmark subsets of :mod:`islr.data.landmarks` (a test keeps the two lists equal).
LANDMARK_SUBSETS = ("seed96", "kaggle118", "hands", "all")


def choices(*allowed: str) -> dict[str, tuple[str, ...]]:
    """Field metadata naming the values an enum-like setting accepts (checked by :func:`from_dict`).

    ``"cuda:N"`` stands for ``cuda:`` followed by a device number.
    """
    return {"choices": allowed}


def allowed_values(cls: type, name: str) -> tuple[str, ...]:
    """The accepted values of field ``name`` of dataclass ``cls`` (empty: any value)."""
    return tuple(next(f for f in dataclasses.fields(cls) if f.name == name).metadata.get("choices", ()))


def check_choice(value: Any, allowed: tuple[str, ...], where: str) -> None:
    """Raise :class:`ConfigError` naming the allowed values (and the closest) if ``value`` is not one."""
    for item in value if isinstance(value, tuple) else (value,):
        text = str(item)
        if text in allowed or any(a.endswith(":N") and text.startswith(a[:-1]) and text[len(a) - 1:].isdigit()
                                  for a in allowed):
            continue
        import difflib

        close = difflib.get_close_matches(text, allowed, 1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{where}: {text!r} is not one of {', '.join(allowed)}{hint}")


@dataclass
class PreprocessConfig:
    """How raw ``(frames, 543, 3)`` landmarks become model features (one definition everywhere)."""

    landmarks: str = field(default="hands", metadata=choices(*LANDMARK_SUBSETS))
    """Named subset of :mod:`islr.data.landmarks` (``seed96``, ``kaggle118``, ``hands``, ``all``).
    ``hands`` (both hands, centred on the lips) is the default: participant-grouped CV on Kaggle and
    webcam signers found it generalises across recording set-ups better than ``seed96`` (README)."""
    coords: tuple[str, ...] = field(default=("x", "y"), metadata=choices("x", "y", "z"))
    """Coordinates kept, a subset of x, y, z in that order."""
    max_gap: int = 3
    """Linear interpolation fills NaN runs up to this many frames (0 disables)."""
    drop_empty_frames: str = field(default="hands", metadata=choices("hands", "selected", "none"))
    """Drop frames where ``hands`` (both hands) or ``selected`` (every selected point) are NaN; ``none`` keeps all."""
    length_mode: str = field(default="fixed", metadata=choices("fixed", "variable"))
    """``fixed``: resize to ``fixed_len`` (pad/repeat/pool, the seed); ``variable``: truncate to ``max_len`` and mask."""
    fixed_len: int = 32
    """Frames after resizing in ``fixed`` mode (the seed's INPUT_SIZE)."""
    max_len: int = 384
    """Longest sequence kept in ``variable`` mode (longer ones are truncated, never resized)."""
    normalization: str = field(
        default="center_std", metadata=choices("none", "seed_normalize", "seed_standardize", "center_std"))
    """``none``, ``seed_normalize`` (per-sequence min-max), ``seed_standardize`` (per-sequence z-score),
    or ``center_std`` (1st place: centre on the nan-mean of ``ref_landmark``, divide by the nan-std)."""
    ref_landmark: int = 17
    """Raw row used as the centre in ``center_std`` (17 = lower lip centre)."""
    motion: bool = False
    """Append lag-1 and lag-2 frame differences (the 1st place's motion features)."""
    nan_value: float = 0.0
    """Value written where a landmark is still missing after interpolation."""

    def key(self) -> str:
        """A short stable hash of these settings (part of the cache key)."""
        blob = json.dumps(to_dict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass
class AugmentConfig:
    """Probabilities (0 disables) and ranges of the training augmentations.

    The defaults (mirror, affine, time resampling, temporal mask, spatial cutout: the 1st place's
    set) were chosen by participant-grouped CV on genuine Kaggle and webcam signers: see the README's
    "Defaults that generalise" table.
    """

    frame_dropout: float = 0.0
    """Probability of the seed's frame dropout on a sample."""
    frame_dropout_rate: float = 0.05
    """Frame dropout removes each frame with this probability (one frame always stays)."""
    mirror: float = 0.5
    """Probability of a horizontal flip (x -> 1 - x, left and right landmarks swapped)."""
    rotate: float = 0.0
    """Probability of a rotation about the image centre."""
    rotate_degrees: float = 10.0
    """Rotations are drawn uniformly from +-this many degrees."""
    scale: float = 0.0
    """Probability of a uniform scaling about the image centre."""
    scale_range: tuple[float, float] = (0.9, 1.1)
    """Scale factors are drawn uniformly from this (low, high) range."""
    shift: float = 0.0
    """Probability of a translation."""
    shift_max: float = 0.01
    """Translations are drawn uniformly from +-this (image units) in x and in y."""
    time_resample: float = 0.8
    """Probability of a speed change (the 1st place's time resampling)."""
    time_resample_range: tuple[float, float] = (0.5, 1.5)
    """Speed factors: a sequence of L frames becomes round(L * rate) frames
    by linear interpolation."""
    affine: float = 0.75
    """Probability of the 1st place's random affine (scale, shear, rotation, shift)."""
    affine_scale: tuple[float, float] = (0.8, 1.2)
    """Per-axis scale factors of the random affine, drawn from this (low, high) range."""
    affine_shear: float = 0.15
    """Shear of the random affine, drawn from +-this in each direction."""
    affine_shift: float = 0.1
    """Translation of the random affine, drawn from +-this (image units) in x and in y."""
    affine_degrees: float = 30.0
    """Rotation of the random affine, drawn from +-this many degrees."""
    temporal_mask: float = 0.5
    """Probability of a temporal mask (a run of frames set to missing)."""
    temporal_mask_fraction: float = 0.4
    """A temporal mask covers up to this fraction of the frames."""
    spatial_cutout: float = 0.5
    """Probability of a spatial cutout (points inside a random square set to missing)."""
    spatial_cutout_fraction: float = 0.1
    """Side of the cutout square, in image units."""


@dataclass
class DataConfig:
    """Where the data is and how it is split."""

    data_dir: str = ""
    """Folder in Kaggle layout (train.csv, sign map, train_landmark_files/)."""
    cache_dir: str = "cache"
    """Preprocessed stores are kept here, keyed by settings and input files."""
    split: str = field(default="participant", metadata=choices("participant", "random_stratified"))
    """``participant`` (signer-independent, default) or ``random_stratified`` (signer-dependent, the seed's)."""
    valid_size: float = 0.1
    """Share of the samples held out for validation (whole participants in the ``participant``
    split)."""
    test_size: float = 0.1
    """Share of the samples held out for the test set (whole participants in the ``participant``
    split)."""
    fold: int = -1
    """With ``folds`` > 1: which participant-grouped fold is the validation set."""
    folds: int = 0
    """Participant-grouped k-fold cross-validation with this many folds
    (0 or 1: one plain split)."""
    split_seed: int = 0
    """Seed of the split, apart from ``train.seed`` so the seeds of an ensemble share their folds."""
    exclusions: str = ""
    """Optional exclusion CSV written by ``islr clean`` (rows listed there are skipped)."""
    workers: int = 0
    """Processes for the cache build (0 = all cores)."""
    signs: tuple[str, ...] = ()
    """Keep only these signs, re-indexed in this order (e.g. ``hello,thankyou`` for a 2-class task)."""
    sampling: str = field(default="balanced", metadata=choices("uniform", "balanced", "sqrt"))
    """Training epoch order: ``uniform`` (each sample once), ``balanced`` (with replacement, every class
    equally likely) or ``sqrt`` (with replacement, probability ∝ 1/sqrt(class count))."""
    fold_participants: tuple[int, ...] = ()
    """With ``folds`` > 1: only these participants rotate through the folds (and are validated on);
    every other participant always trains. Empty: every participant rotates."""


@dataclass
class ModelConfig:
    """A registered model name and its constructor parameters."""

    name: str = "transformer"
    """Registered model name (see ``islr models``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """Constructor parameters of the model (defaults from ``configs/models/<name>.yaml``)."""


@dataclass
class TrainConfig:
    """Optimisation and the trainer's behaviour."""

    framework: str = field(default="torch", metadata=choices("torch", "tensorflow", "pytorch", "tf", "keras"))
    """``torch`` or ``tensorflow`` (aliases ``pytorch``, ``tf``, ``keras``)."""
    epochs: int = 40
    """Training epochs (the cosine schedule reaches its floor at the last one)."""
    batch_size: int = 64
    """Samples per training batch."""
    lr: float = 1e-3
    """Peak learning rate."""
    optimizer: str = field(default="adamw", metadata=choices("adam", "adamw", "sgd", "radam_lookahead"))
    """``adam``, ``adamw``, ``sgd`` or ``radam_lookahead``."""
    weight_decay: float = 0.01
    """Weight decay of the optimizer (not applied to biases and norm layers)."""
    schedule: str = field(default="cosine", metadata=choices("constant", "exponential", "cosine"))
    """``constant``, ``exponential`` (the seed's; ``gamma`` per epoch) or ``cosine`` (with ``warmup_epochs``)."""
    gamma: float = 0.95
    """Per-epoch decay factor of the ``exponential`` schedule."""
    warmup_epochs: float = 0.0
    """Linear warm-up length of the ``cosine`` schedule, in (fractional) epochs."""
    min_lr_ratio: float = 0.01
    """The ``cosine`` schedule ends at ``lr * min_lr_ratio``."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0 disables)."""
    label_smoothing: float = 0.0
    """Label smoothing of the cross-entropy loss (0 disables)."""
    class_weights: str = field(default="none", metadata=choices("none", "balanced"))
    """``none`` or ``balanced``: weight each sample's loss by n / (k * count of its class) in training."""
    mixed_precision: bool = False
    """Train in float16/bfloat16 where a GPU supports it (ignored on the CPU)."""
    compile: bool = False
    """PyTorch: run the training step through ``torch.compile`` (dynamic shapes with variable
    lengths; the first batches are slow while it compiles). Ignored by TensorFlow."""
    awp_start_epoch: int = -1
    """Adversarial weight perturbation from this epoch on (-1 disables)."""
    awp_lambda: float = 0.2
    """Size of the adversarial weight perturbation, relative to each weight's norm."""
    seed: int = 0
    """Seed of weights, batch order and augmentations (the split has ``data.split_seed``)."""
    device: str = field(default="auto", metadata=choices("auto", "cpu", "cuda", "cuda:N", "mps"))
    """``auto`` (cuda, then mps, then cpu), or one of them."""
    limit_batches: int = 0
    """Stop each epoch after this many batches (0 = all), for quick runs."""
    early_stopping: bool = False
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs."""
    select_best: bool = False
    """Keep the epoch with the best ``monitor`` as the ``best`` checkpoint; ``false``: ``best`` is
    the last epoch (no choice made on the validation signers: the epoch count, chosen by CV, decides)."""
    monitor: str = "val_accuracy"
    """Validation metric for early stopping and the best checkpoint: ``val_accuracy``, ``val_loss``,
    ``val_top5`` or ``val_macro_f1``."""
    mode: str = field(default="max", metadata=choices("max", "min"))
    """``max`` if a larger ``monitor`` is better, ``min`` if smaller is."""
    patience: int = 10
    """Epochs without improvement before early stopping."""
    min_delta: float = 0.001
    """Smallest change of ``monitor`` that counts as an improvement for early stopping."""
    dynamic_dropout: bool = False
    """The seed's dropout schedule: start at ``dropout_init``, multiply by ``dropout_rate`` every
    ``dropout_interval`` epochs up to ``dropout_max``."""
    dropout_init: float = 0.01
    """Starting dropout of the dynamic dropout schedule."""
    dropout_rate: float = 1.1
    """Factor applied to the dropout every ``dropout_interval`` epochs."""
    dropout_interval: int = 2
    """Epochs between dropout increases."""
    dropout_max: float = 0.2
    """Upper bound of the dynamic dropout."""
    dynamic_augmentation: bool = False
    """The seed's schedule: multiply every enabled augmentation probability by ``aug_rate`` every
    ``aug_interval`` epochs, capped at ``aug_max``."""
    aug_rate: float = 1.5
    """Factor applied to the augmentation probabilities every ``aug_interval`` epochs."""
    aug_interval: int = 5
    """Epochs between augmentation increases."""
    aug_max: float = 0.35
    """Cap of the growing augmentation probabilities."""
    tensorboard: bool = True
    """Write TensorBoard event files into the run directory."""
    progress: bool = True
    """Show progress bars (only when stderr is a terminal; logs get one line per epoch)."""
    num_workers: int = 0
    """Processes building the training batches (augment, featurize, collate) from the cache;
    0 builds them in the training process. The batches are the same for any value; padded
    batches are handed over in shared memory (``/dev/shm``), see ``islr.data.loader``."""


@dataclass
class ExperimentConfig:
    """Everything a run needs; saved resolved in every run directory and checkpoint."""

    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict (tuples become lists, so it is JSON and YAML friendly)."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        return value

    return plain(cfg)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = getattr(hint, "__origin__", None)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return from_dict(hint, value, where)
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if hint is int:
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint is str:
        return str(value)
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.strip("()[]").split(",") if v.strip()]
        args = hint.__args__
        inner = args[0]
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    return value


def from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) dict; unknown keys are errors."""
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(f"unknown key(s) {sorted(unknown)} in {where or cls.__name__}; known: {sorted(names)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    for f in dataclasses.fields(cls):
        if f.name in kwargs and f.metadata.get("choices"):
            check_choice(kwargs[f.name], f.metadata["choices"], f"{where}.{f.name}" if where else f.name)
    return cls(**kwargs)


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``model.params`` and other plain dicts merge key by key."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``"train.lr=3e-4"`` -> ``{"train": {"lr": 3e-4}}`` (the value is parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value")
    dotted, raw = text.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict[str, Any] = {}
    node = out
    parts = dotted.strip().lstrip("-").split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping (empty file -> empty dict); a ``base:`` key names a file to start from."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:  # safe_load: tags that build objects are refused
        raise ConfigError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping at the top level")
    base = data.pop("base", None)
    if base:
        data = merge(read_yaml((path.parent / base).resolve()), data)
    return data


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> ExperimentConfig:
    """Defaults <- YAML file <- ``extra`` dict <- dotted overrides, validated into dataclasses."""
    data: dict[str, Any] = read_yaml(find_config(path)) if path else {}
    if extra:
        data = merge(data, extra)
    for text in overrides or []:
        data = merge(data, parse_override(text))
    return from_dict(ExperimentConfig, data)


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    """Write the resolved config as YAML (readable by :func:`load_config`)."""
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def configs_dir() -> Path:
    """The shipped ``configs/`` folder (inside the package when installed, else the repo's)."""
    packaged = Path(__file__).parent / "configs"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "configs"


def shipped_configs() -> list[str]:
    """Names of the shipped experiment and model configs (``experiments/kaggle-1st``, ``models/lstm``)."""
    root = configs_dir()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml")
                  if p.parent.name != "search")


def find_config(name: str | Path) -> Path:
    """A config file given as a path, else by name among the configs shipped inside the package.

    ``configs/experiments/kaggle-1st.yaml`` (an existing path) is read as given; ``kaggle-1st``,
    ``experiments/kaggle-1st``, ``models/transformer`` or ``configs/models/lstm.yaml`` from any
    folder resolve against the packaged ``configs/`` (experiments first, then models).
    """
    path = Path(name)
    if path.is_file():
        return path
    root = configs_dir()
    rel = path.as_posix().removesuffix(".yaml")
    if rel.startswith("configs/"):
        rel = rel[len("configs/"):]
    for candidate in (rel, f"experiments/{rel}", f"models/{rel}"):
        if (root / f"{candidate}.yaml").is_file():
            return root / f"{candidate}.yaml"
    import difflib

    names = shipped_configs()
    stems = {n.rsplit("/", 1)[-1]: n for n in names}
    close = difflib.get_close_matches(rel, names, 1)
    close = close or [stems[m] for m in difflib.get_close_matches(rel, list(stems), 1)]
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(f"{name}: config file not found, neither a file nor a shipped config "
                      f"({hint}shipped: {', '.join(names)})")
