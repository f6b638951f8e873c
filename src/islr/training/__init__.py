"""Framework-free training: the Trainer, its callbacks and numpy metrics."""
