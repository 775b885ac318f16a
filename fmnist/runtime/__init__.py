"""Where a run runs: the CPU's features and oneDNN before TensorFlow loads (host), the tf.distribute strategy
from the config, TF_CONFIG and the devices (strategy; jobset_env builds TF_CONFIG in a JobSet pod), precision and
jit_compile for that hardware (precision), and what the commands print (console, and its stderr relay process,
console_relay).

Never imports: fmnist.data, fmnist.models, fmnist.training, fmnist.workdir, fmnist.export, fmnist.predict,
fmnist.main.
"""
