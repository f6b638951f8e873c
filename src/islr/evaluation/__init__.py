"""Evaluation: metrics on a split (:mod:`~islr.evaluation.evaluate`), model files
(:mod:`~islr.evaluation.evaluate_file`), participant-grouped cross-validation
(:mod:`~islr.evaluation.cv`), run tables (:mod:`~islr.evaluation.compare`), the HTML report
(:mod:`~islr.evaluation.report`) and confusion summaries (:mod:`~islr.evaluation.confusion`)."""
