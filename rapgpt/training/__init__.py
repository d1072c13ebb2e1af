"""Training: the shared loop (`loop`: pretraining, `fit`), LoRA fine-tuning (`finetune`), and the loop's parts:
settings, batches, schedule, evaluation, state and plots."""
