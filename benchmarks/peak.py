"""The machine's practical peak, in its own process: a large square matmul (2 n^3 FLOPs) per dtype through TensorFlow.

  python -m benchmarks.peak --size=4096 --repeats=5 --dtypes=float32,bfloat16
"""

from __future__ import annotations

import argparse

from benchmarks import common


def matmul_peak(size: int, dtype: str, repeats: int) -> dict:
    """FLOP/s of an n x n by n x n matmul: median over `repeats` after one warm-up call."""
    import tensorflow as tf

    from benchmarks.cell import timed

    a = tf.cast(tf.random.stateless_normal([size, size], seed=[0, 1]), dtype)
    b = tf.cast(tf.random.stateless_normal([size, size], seed=[0, 2]), dtype)

    @tf.function
    def matmul(x, y):
        return tf.matmul(x, y)[0, 0]  # One element out: the product is computed in full but never copied.

    seconds = timed(lambda: matmul(a, b).numpy(), 1, repeats, f"matmul {dtype} {size}x{size}")
    work = 2 * size**3
    return {"size": size, "flops": work, "seconds": common.summarize(seconds),
            "flops_per_sec": common.summarize([work / s for s in seconds])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", default="float32,bfloat16")
    args = parser.parse_args()
    common.emit("result", peaks={d: matmul_peak(args.size, d, args.repeats) for d in args.dtypes.split(",")})


if __name__ == "__main__":
    common.run_worker(main)
