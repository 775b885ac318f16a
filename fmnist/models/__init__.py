"""The models: the Keras networks by name (models), their layers (synchronised BatchNorm, step-seeded dropout:
layers), airbench's frozen whitening convolution (whitening) and Dirac initialisation (initializers), and the FLOPs
a model costs (flops). A model is built from a config; it knows no loop, no workdir and no export.

Never imports: fmnist.training, fmnist.workdir, fmnist.export, fmnist.predict, fmnist.main.
"""
