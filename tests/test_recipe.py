"""The airbench recipe's parts (issue #16), each checked directly on real data or by real training steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from configs import airbench
from fmnist.data import augment
from fmnist.data import pipeline as input_pipeline
from fmnist.data.dataset import Split
from fmnist.models import initializers, whitening
from fmnist.training import experiment, images, optimizer, tta


def test_whitening_makes_training_patches_white(splits):
    """Held-out training patches through the kernel: covariance ~ identity on the 16 directions, sign pairs."""
    images = input_pipeline.normalize(splits[0]["train"].images[:2000]).numpy()
    k = whitening.kernel(images[:1000], 4, 5e-4)
    assert k.shape == (4, 4, 1, 32)
    np.testing.assert_array_equal(k[..., 16:], -k[..., :16])
    out = whitening.patches(images[1000:], 4) @ k[..., :16].reshape(16, 16)
    cov = out.T @ out / len(out)
    assert np.abs(cov - np.eye(16)).max() < 0.15, np.round(cov, 2)
    # The same seed picks the same images, another seed others.
    np.testing.assert_array_equal(whitening.sample(np.arange(100), 3, 10), whitening.sample(np.arange(100), 3, 10))
    assert not np.array_equal(whitening.sample(np.arange(100), 3, 10), whitening.sample(np.arange(100), 4, 10))


def test_dirac_conv_is_an_identity_map():
    conv = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)
    x = np.random.default_rng(0).normal(size=(2, 7, 7, 8)).astype("float32")
    conv.build(x.shape)
    conv.kernel.assign(initializers.dirac(np.asarray(conv.kernel)))
    np.testing.assert_allclose(conv(x), x, atol=1e-6)
    wider = initializers.dirac(np.ones((3, 3, 4, 6), "float32"))  # More outputs: the first 4 copy, the rest stay.
    assert wider[1, 1, 2, 2] == 1 and wider[0, 0, 2, 2] == 0 and wider[1, 1, 2, 3] == 0 and (wider[..., 4:] == 1).all()


def test_alternating_flip_mirrors_each_image_in_alternate_epochs():
    """Through the real input pipeline: each example (labelled by its index) is the mirror of itself one epoch
    later and the same two epochs later; about half are mirrored in the first epoch."""
    rng = np.random.default_rng(0)
    n, batch = 64, 16
    split = Split(rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), np.arange(n, dtype=np.int32))
    options = {"crop_padding": 0, "flip": True, "erasing": 0.0, "flip_alternate": True}
    ds = input_pipeline.train_dataset(split, tf.distribute.InputContext(), global_batch=batch, seed=1,
                                      steps_per_epoch=n // batch, start_step=0, total_steps=3 * n // batch,
                                      augment_options=options)
    seen = [{} for _ in range(3)]
    for step, (x, y) in enumerate(ds.take(3 * n // batch)):
        for image, label in zip(x.numpy(), y.numpy(), strict=True):
            seen[step * batch // n][label] = image
    plain = input_pipeline.normalize(split.images).numpy()
    mirrored = [np.array_equal(seen[0][i], plain[i][:, ::-1]) for i in range(n)]
    for i in range(n):
        np.testing.assert_array_equal(seen[1][i], seen[0][i][:, ::-1])
        np.testing.assert_array_equal(seen[2][i], seen[0][i])
    assert 16 < sum(mirrored) < 48
    # Stateless: the same draw whatever the call.
    ids = tf.range(1000)
    np.testing.assert_array_equal(augment.alternate_mirror(1, ids, 4), augment.alternate_mirror(1, ids, 0))


def test_triangular_schedule():
    s = optimizer.Triangular(1.0, total_steps=100, warmup_steps=23)
    np.testing.assert_allclose([float(s(t)) for t in (0, 23, 100)], [0.2, 1.0, 0.07], rtol=1e-6)
    assert float(s(10)) < float(s(20)) and float(s(50)) > float(s(90))


def test_tta_views_shift_by_one_pixel():
    x = tf.reshape(tf.range(16, dtype=tf.float32), [1, 4, 4, 1])
    views = tta.views(x)
    assert len(views) == 6
    np.testing.assert_array_equal(views[1][0, :3, :3, 0], x[0, 1:, 1:, 0])  # Up-left.
    np.testing.assert_array_equal(views[2][0, 1:, 1:, 0], x[0, :3, :3, 0])  # Down-right.
    np.testing.assert_array_equal(views[3], x[:, :, ::-1])


def _recipe_config(**overrides):
    c = airbench.get_config()
    c.model_width, c.batch_size, c.num_train_steps, c.steps_per_loop = 8, 64, 6, 3
    c.lookahead_every, c.learning_rate, c.precision, c.jit_compile = 3, 0.2, "float32", "false"
    c.batchnorm_momentum = 0.4
    for k, v in overrides.items():
        c[k] = v
    return c


def test_recipe_trains_and_resume_restores_the_whitening(tmp_path, splits):
    """configs/airbench.py's options together, real steps: the frozen whitening kernel comes from the seeded training
    images and does not train, BatchNorm has no scale and its biases learn at 64x, lookahead leaves the model at its
    average, multi-view TTA is reported beside the plain figure; a resumed run restores the checkpointed kernel even
    where its config would compute another."""
    config = _recipe_config()
    exp = experiment.build(config, str(tmp_path))
    conv = whitening.layer(exp.model)
    images = input_pipeline.normalize(whitening.sample(exp.splits["train"].images, config.seed)).numpy()
    np.testing.assert_allclose(conv.kernel.numpy(), whitening.kernel(images, 4, config.whitening_eps), rtol=1e-6)
    assert not conv.trainable and all("gamma" not in v.path for v in exp.model.weights)
    assert {x.momentum for x in exp.model.layers if isinstance(x, keras.layers.BatchNormalization)} == {0.4}
    kernel, before = conv.kernel.numpy(), [v.numpy() for v in exp.model.trainable_variables]
    exp.loops.train(exp.train_iterator(0), tf.constant(6))
    sums = exp.loops.train_sums.read()
    assert np.isfinite(sums["loss"]) and sums["count"] == 6 * 64
    np.testing.assert_array_equal(conv.kernel.numpy(), kernel)
    for w, avg in zip(exp.lookahead._weights, exp.lookahead.averages, strict=True):  # Step 6: a lookahead sync.
        np.testing.assert_array_equal(w.numpy(), avg.numpy())
    assert len(exp.lookahead.averages) == len(exp.model.weights) - 1  # All but the whitening kernel.
    moved = {v.path: np.abs(v.numpy() - b).mean() for v, b in zip(exp.model.trainable_variables, before, strict=True)}
    assert all(moved.values())
    test = exp.splits["test"]
    exp.splits["test_head"] = Split(test.images[:256], test.labels[:256])  # 7 forward passes per image: keep it short.
    result = exp.evaluate("test_head")
    assert 0 < result["accuracy_tta_multiview"] <= 1 and result["accuracy_tta"] is None
    exp.checkpoints.save(6)

    other = experiment.build(_recipe_config(whitening_eps=0.5), str(tmp_path))
    assert not np.allclose(whitening.layer(other.model).kernel.numpy(), kernel)
    other.checkpoints.restore_latest()
    np.testing.assert_array_equal(whitening.layer(other.model).kernel.numpy(), kernel)
    for a, b in zip(other.lookahead.averages, exp.lookahead.averages, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_bn_bias_lr_scale_multiplies_only_batchnorm_bias_gradients(tmp_path):
    exp = experiment.build(_recipe_config(lookahead_every=0), str(tmp_path))
    multipliers = optimizer.gradient_multipliers(64.0, exp.model)
    scaled = [v.path for v, m in zip(exp.model.trainable_variables, multipliers, strict=True) if m == 64.0]
    assert scaled and all(p.endswith("/beta") for p in scaled)
    assert len(scaled) == 6 and multipliers.count(1.0) == len(multipliers) - 6


@pytest.mark.parametrize("scale", [True, False])
def test_fused_batchnorm_without_scale_matches_keras(scale):
    from fmnist.models.layers import BatchNormalization

    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, (16, 5, 5, 4)).astype("float32"))
    ours, theirs = BatchNormalization(scale=scale), keras.layers.BatchNormalization(scale=scale)
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.beta.assign(np.linspace(-1, 1, 4))
    np.testing.assert_allclose(ours(x, training=True), theirs(x, training=True), atol=1e-4)


def test_training_examples_picture_takes_the_alternating_flip_without_translation(tmp_path):
    """TensorBoard's picture of the first training batch (fmnist.training.train, before any step) with the alternating
    flip and no crop: its first 32 images mirrored as the pipeline mirrors them in that epoch."""
    from configs import smoke
    from fmnist.training import metrics, train

    c = smoke.get_config()
    c.model, c.model_width, c.batch_size, c.precision = "fast_cnn", 8, 64, "float32"
    c.augment_flip, c.augment_flip_alternate = True, True
    exp = experiment.build(c, str(tmp_path))
    summaries = metrics.Summaries(str(tmp_path), enabled=True)
    train._start_images(exp, summaries, 0)
    summaries.flush()
    pictures = [tf.image.decode_png(tf.make_ndarray(v.tensor)[2]).numpy()
                for path in (tmp_path / "tensorboard" / "train").glob("events.out.tfevents.*")
                for event in tf.compat.v1.train.summary_iterator(str(path))
                for v in event.summary.value if v.tag == "training_examples"]
    x, y = exp.splits["train"].images[:32], exp.splits["train"].labels[:32]
    mirror = augment.alternate_mirror(c.seed, tf.range(32), 0).numpy()
    assert 0 < mirror.sum() < 32
    expected = images.image_grid(np.where(mirror[:, None, None, None], x[:, :, ::-1], x),
                                 [exp.class_names[i] for i in y], columns=8)
    assert len(pictures) == 1
    np.testing.assert_array_equal(pictures[0], expected[0])
    with pytest.raises(ValueError, match="flip_alternate needs `mirror`"):
        augment.augment_batch(tf.zeros([2, 28, 28, 1], tf.uint8), augment.batch_seed(0, 0), crop_padding=0,
                              flip=True, erasing=0.0, flip_alternate=True)
