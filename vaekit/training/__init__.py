"""Training: β schedules, losses with free bits, checkpoints and the training loop."""
