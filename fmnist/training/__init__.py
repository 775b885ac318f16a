"""Training: everything a config builds (experiment), the Python outer loop with its logging, evaluation,
checkpoints and recovery (train), the compiled inner loops (train_loop), the optimizer and its schedule (optimizer),
the weight averages (ema, lookahead), metrics and TensorBoard's pictures (metrics, images), test-time augmentation
(tta) and the injected faults that test the recovery (faults).

Never imports: fmnist.export, fmnist.predict, fmnist.main.
"""
