"""Export trained runs: :mod:`~islr.export.run` (``export_run``: the file, its sidecar and a parity
check), ONNX (:mod:`~islr.export.onnx_export`), TFLite (:mod:`~islr.export.tflite_export`), the
Kaggle TFLite contract (:mod:`~islr.export.kaggle_export`), mirror TTA in the graph
(:mod:`~islr.export.tta_export`) and parity checks (:mod:`~islr.export.parity`)."""
