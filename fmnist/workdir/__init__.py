"""A run's workdir: files on any filesystem TensorFlow writes (storage), checkpoints and what they hold
(checkpoint), the lease that keeps one run per workdir (lease), and the signals and preemption notices that stop a
run at a loop boundary with a checkpoint (preemption).

Never imports: fmnist.data, fmnist.models, fmnist.training, fmnist.export, fmnist.predict, fmnist.main.
"""
