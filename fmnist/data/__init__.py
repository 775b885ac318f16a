"""The data: Fashion-MNIST found, verified and prepared offline as TFDS's dataset (dataset; `make data` runs
prepare), and the per-replica tf.data pipelines that feed training and evaluation (pipeline), with the seeded
augmentations inside them (augment). It knows no model and no loop.

Never imports: fmnist.models, fmnist.training, fmnist.workdir, fmnist.export, fmnist.predict, fmnist.main.
"""
