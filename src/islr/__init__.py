"""islr: isolated sign language recognition from MediaPipe Holistic landmarks.

Data, config, trainer and CLI are framework-free; PyTorch and TensorFlow live behind
``islr.backends`` and ``islr.models.{torch,tensorflow}`` and are imported only when asked for.
"""

__version__ = "0.1.0"
