"""A frozen patch-whitening first convolution (Keller Jordan's airbench), computed once from training images.

Its kernel holds the eigenvectors of the training patches' (uncentred) covariance, each scaled by
1/sqrt(eigenvalue + eps), and their negatives: 2 x k*k filters for k x k patches of 1-channel images (k=4: 32
filters, a multiple of oneDNN's 16-channel blocks). On training patches its first k*k outputs have covariance
diag(eigenvalue / (eigenvalue + eps)), about the identity. The layer is not trainable; its kernel is a model
weight, so checkpoints and exports keep it, and a resumed run restores the kernel it trained with.
"""

from __future__ import annotations

import keras
import numpy as np

LAYER_NAME = "whiten"
NUM_IMAGES = 2000  # Training images the covariance is estimated from (1.25M 4x4 patches; airbench: 5,000).


def patches(images: np.ndarray, size: int) -> np.ndarray:
    """Every size x size patch (stride 1, valid) of float images [n, H, W, 1], flattened: [n * positions, size*size]."""
    windows = np.lib.stride_tricks.sliding_window_view(images[..., 0], (size, size), axis=(1, 2))
    return windows.reshape(-1, size * size).astype(np.float32)


def kernel(images: np.ndarray, size: int, eps: float) -> np.ndarray:
    """The whitening kernel [size, size, 1, 2*size*size] (float32) of float images [n, H, W, 1]."""
    x = patches(images, size)
    eigenvalues, eigenvectors = np.linalg.eigh((x.T @ x).astype(np.float64) / len(x))
    filters = (eigenvectors / np.sqrt(eigenvalues + eps)).T   # [size*size directions, size*size pixels]
    filters = np.concatenate([filters, -filters])
    return filters.reshape(-1, size, size, 1).transpose(1, 2, 3, 0).astype(np.float32)


def sample(images: np.ndarray, seed: int, count: int = NUM_IMAGES) -> np.ndarray:
    """`count` of `images`, chosen by `seed` (the same for the same seed), in index order."""
    rng = np.random.default_rng([seed, 0x77686974])  # "whit": apart from the run's other seeded draws.
    return images[np.sort(rng.choice(len(images), min(count, len(images)), replace=False))]


def layer(model: keras.Model) -> keras.layers.Conv2D | None:
    """The model's whitening convolution, if it has one."""
    return next((x for x in model.layers if x.name == LAYER_NAME), None)


def set_kernel(model: keras.Model, float_images: np.ndarray, eps: float) -> None:
    """Sets the model's whitening kernel from float images [n, H, W, 1], normalised as the model sees them."""
    conv = layer(model)
    conv.kernel.assign(kernel(float_images, conv.kernel.shape[0], eps))
