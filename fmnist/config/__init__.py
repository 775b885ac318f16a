"""The config: the values a config may choose (choices), every check of a config before anything runs
(validation), and what `--mode=show_config` prints (show). It runs before TensorFlow loads, so that a wrong config
costs one line and no start-up.

Never imports: tensorflow, keras, fmnist.data, fmnist.models, fmnist.runtime, fmnist.training, fmnist.workdir,
fmnist.export, fmnist.predict, fmnist.main.
"""
