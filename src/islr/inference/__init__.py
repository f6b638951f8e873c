"""Inference: predictors over run directories and exported files, the camera/video pipeline."""
