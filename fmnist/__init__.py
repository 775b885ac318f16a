"""fmnist: train, evaluate, benchmark and ship Fashion-MNIST classifiers with TensorFlow.

Subpackages, in the order data flows: config, data, models, runtime, training, workdir, export, predict. main.py is
the entry point (flags only), errors.py the errors they all raise. Each subpackage's docstring says what it owns and
what it never imports; tests/test_import_rules.py holds them to it.
"""

__version__ = "0.1.0"
