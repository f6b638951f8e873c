"""Seed ensembles as one exportable model.

An ensemble run (``islr cv --seeds N``) averages the logits of N runs of one model. That is
exactly the zoo's logit-average ensemble with N identical members, so the members' weights are
loaded into one such model (in the runs' framework) and exported like any single run.
"""

from __future__ import annotations

from typing import Any

from islr.data.preprocess import feature_dim
from islr.errors import ModelError
from islr.models.registry import create_model

# Every registered ensemble name builds the same logit-average model from ``members``.
ENSEMBLE_BUILDER = "transformer_ensemble"


def merge_ensemble(predictor: Any) -> tuple[Any, str, dict[str, Any]]:
    """One model averaging an :class:`~islr.inference.ensemble.EnsemblePredictor`'s members.

    Returns ``(model, registered name, params)``, the name and params building the same
    architecture (for the Keras-twin route of PyTorch ensembles).
    """
    members = predictor.members
    names = {m.cfg.model.name for m in members}
    if len(names) != 1:
        raise ModelError(f"the ensemble mixes models {sorted(names)}; export its members one by one")
    framework = members[0].cfg.train.framework
    if any(m.cfg.train.framework != framework for m in members):
        raise ModelError("the ensemble mixes frameworks; export its members one by one")
    spec = [{"name": m.cfg.model.name, "params": dict(m.cfg.model.params)} for m in members]
    params = {"members": spec}
    dim = feature_dim(predictor.cfg.preprocess)
    merged = create_model(ENSEMBLE_BUILDER, framework, dim, predictor.num_classes, params, use_defaults=False)
    for slot, member in zip(merged.models, members, strict=True):
        source = member.backend.model
        if framework == "torch":
            slot.load_state_dict(source.state_dict())
            slot.eval()
        else:
            slot.set_weights(source.get_weights())
    if framework == "torch":
        merged.eval()
    return merged, ENSEMBLE_BUILDER, params
