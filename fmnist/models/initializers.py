"""Dirac (identity) initialisation of convolutions (airbench): each convolution's first min(in, out) filters pass
their input channel through unchanged (a 1 at the kernel's centre), the other filters keep their random init."""

from __future__ import annotations

import keras
import numpy as np

from fmnist.models.whitening import LAYER_NAME


def dirac(kernel: np.ndarray) -> np.ndarray:
    """`kernel` [kh, kw, in, out] with its first min(in, out) filters replaced by identities."""
    kh, kw, cin, cout = kernel.shape
    out = kernel.copy()
    n = min(cin, cout)
    out[..., :n] = 0
    out[kh // 2, kw // 2, np.arange(n), np.arange(n)] = 1
    return out


def apply_dirac(model: keras.Model) -> int:
    """Dirac-initialises every trainable 2-D convolution of `model` (not the frozen whitening one); returns how many."""
    convs = [x for x in model.layers if isinstance(x, keras.layers.Conv2D) and x.name != LAYER_NAME and x.trainable]
    for conv in convs:
        conv.kernel.assign(dirac(np.asarray(conv.kernel)))
    return len(convs)
