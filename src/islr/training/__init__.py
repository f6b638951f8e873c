"""Framework-free training: the Trainer, its callbacks, learning-rate schedules and the train pipeline."""
