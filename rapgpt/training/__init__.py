"""The parts of the training loop (`rapgpt.train`): settings, batches, schedule, evaluation, state and plots."""
