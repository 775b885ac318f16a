"""The shared base config: every key fmnist knows, with its default. Other configs start here and change a few.

Not meant to be run as is (it is `configs/seed_cnn.py` without the cosine schedule and with 10 epochs), but it can be:
  python -m fmnist.main --config=configs/default.py --workdir=runs/default
Measured figures are in the docstrings of the configs built from it (seed_cnn.py, speedrun.py, smoke.py, best.py).
Their commands run from the repository root in the activated venv (`source .venv/bin/activate`). To see any config
as it would run, with these comments: python -m fmnist.main --config=configs/cpu.py --mode=show_config
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()

    # What to train.
    c.model = "seed_cnn"          # seed_cnn | bn_cnn | fast_cnn | resnet | airbench (fmnist/models/models.py).
    c.model_width = 0             # Base width of models that have one (0 = the model's own default).
    c.model_depth = 0             # Blocks per stage for models that have one (0 = the model's own default).
    c.dropout = 0.0
    # The airbench family only (fmnist.models.models.airbench; configs/airbench.py):
    c.whitening_patch = 4         # 2 | 4: patch size of its frozen whitening convolution (2*p*p filters).
    c.activation = "gelu"         # gelu | relu.
    c.logit_scale = 1.0           # Multiplies the logits (airbench: 1/9).
    c.batchnorm_scale = True      # False: BatchNorm without its scale (gamma), as airbench.
    c.batchnorm_momentum = 0.9    # Keras momentum of BatchNorm's moving statistics (airbench: 0.4, PyTorch's 0.6).
    # Any model with such a layer (named 'whiten'): its kernel, from seeded training images
    # (fmnist/models/whitening.py).
    c.whitening_eps = 5e-4        # Added to the patch covariance's eigenvalues before 1/sqrt.
    c.dirac_init = False          # Identity init of the first min(in, out) filters of every trainable convolution.

    # How long and how fast.
    c.batch_size = 128            # Global batch, split evenly over all replicas.
    c.num_epochs = 10
    c.num_train_steps = -1        # >0 overrides num_epochs (for smoke runs and benchmarks).
    c.learning_rate = 1e-3        # For the global batch; never rescaled unless scale_lr_with_batch is set.
    c.scale_lr_with_batch = 0     # >0: linear scaling rule, lr = learning_rate * batch_size / this.
    c.optimizer = "adam"          # adam | adamw | sgd (Nesterov momentum) | muon (keras.optimizers.Muon, momentum).
    c.momentum = 0.9
    c.weight_decay = 0.0
    c.lr_schedule = "constant"    # constant | cosine | onecycle | triangular (airbench: 0.2x up to the peak at
    #                               warmup_epochs, default 23% of the run, then down to 0.07x).
    c.bn_bias_lr_scale = 1.0      # Learning-rate multiplier of BatchNorm biases (airbench: 64; sgd only).
    c.warmup_epochs = 0.0
    c.label_smoothing = 0.0
    c.ema_decay = 0.0             # >0: evaluate and export an exponential moving average of the weights (e.g. 0.999).
    c.lookahead_every = 0         # >0: every this many steps, average the weights into a slow copy and continue
    #                               from it (fmnist/training/lookahead.py).
    c.lookahead_decay = 0.95 ** 5  # Decay of that slow copy per sync (lookahead_every > 0).
    c.seed = 0

    # Runtime: resolved per machine; results.json stores the resolved values.
    c.precision = "auto"          # auto | float32 | mixed_bfloat16 | mixed_float16.
    c.jit_compile = "auto"        # auto | true | false.
    c.strategy = "auto"           # auto | default | one_device | mirrored | multi_worker | tpu.
    c.tpu = ""                    # TPU name or 'local' for TPUStrategy.
    c.num_cpu_devices = 0         # >1 splits the CPU into N logical devices (MirroredStrategy as on N GPUs).
    c.sync_batchnorm = "auto"     # auto | true | false: BatchNorm with the global batch's statistics on several
    #                               replicas (auto: where it compiles, i.e. not XLA on CPU devices); false: each
    #                               replica's own, moving statistics averaged over replicas after every loop.
    c.steps_per_loop = 50         # Training steps per tf.function call (the inner loop); one log line each.

    # Data.
    c.data_dir = ""               # TFDS data dir ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets).
    c.validation_size = 0         # Examples held out of the train split (seeded) for model selection.
    c.validation_seed = -1        # Seed of that hold-out (-1: seed). launch.sweep pins it for a whole study.
    c.tta_flip = False            # Also report accuracy with test-time flip averaging (beside the plain figure).
    c.tta_multiview = False       # Also report accuracy_tta_multiview: flip x 1-pixel shifts, 6 views
                                  # (fmnist/training/tta.py).
    # Augmentation of training batches (fmnist/data/augment.py), seeded per step, so resumed runs are bit-exact.
    c.augment_crop_padding = 0    # >0: random translation by up to this many pixels (zero-pad and crop).
    c.augment_flip = False        # Random left-right mirror per example.
    c.augment_flip_alternate = False  # With augment_flip: airbench's derandomised flip (each image mirrored in
    #                                   alternate epochs, from a seeded random choice in the first).
    c.augment_erasing = 0.0       # Per-example probability of random erasing (Zhong et al. 2017).

    # Evaluation, checkpoints, logging.
    c.eval_every_steps = 0        # 0 = after every epoch (and always at the end).
    c.target_accuracy = 0.0       # >0: stop at the first evaluation with test accuracy >= this (time to accuracy);
    #                               validation accuracy when evaluate_test is false.
    c.evaluate_test = True        # False: never evaluate the test split during training (sweep trials select on
    #                               validation_size's hold-out; results.json then has eval_accuracy null).
    c.checkpoint_every_steps = 0  # 0 = after every epoch (and always at the end).
    c.keep_checkpoints = 3
    c.profile_steps = ""          # "START,END": TensorFlow profiler trace of those steps (TensorBoard's profile tab).

    # Reliability.
    c.deterministic = False       # Op determinism: a killed and resumed run ends bit-identical to an unbroken one.
    c.nan_max_retries = 3         # Non-finite loss or state: roll back to the last checkpoint, lower the rate, retry.
    c.nan_lr_factor = 0.5         # Learning-rate multiplier applied at each such retry (retry k: factor^k).
    c.fault_nan_at_step = -1      # Testing aid (fmnist/training/faults.py): poison this step (0-based) ...
    c.fault_nan_in = "loss"       # ... in: loss (the step's) | optimizer (a slot) | batchnorm (a moving variance) |
    #                               ema | lookahead (an average); the states at the end of the step's inner loop ...
    c.fault_nan_replica = -1      # ... on this replica only (-1: on every replica) ...
    c.fault_nan_repeats = 1       # ... on this many attempts (more than nan_max_retries makes the run give up).
    return c
