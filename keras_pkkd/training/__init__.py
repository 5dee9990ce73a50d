"""The training CLI's machinery: schedules and optimizer, strategies, checkpoints, the run."""
