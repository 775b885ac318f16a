"""fmnist: train, evaluate, benchmark and ship Fashion-MNIST classifiers with TensorFlow."""

__version__ = "0.1.0"
