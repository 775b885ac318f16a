"""File size, single-image latency and test accuracy of exported models, each run by the runtime it deploys on.

  python -m benchmarks.exports MODEL... [--test_data=NPZ] [--calls=200] [--warmup=20] [--threads=0] [--json]

MODEL is a .tflite file (LiteRT interpreter, ai-edge-litert), an .onnx file (ONNX Runtime) or a SavedModel (a
version folder or an export root; TensorFlow, its serving_default signature). For each:
- size: the file's bytes (a SavedModel: all files of its folder);
- accuracy and loss: on every image of the test data, in batches of --batch_size; the loss is the mean cross-entropy
  -ln p(true class), as training reports it (probabilities floored at float32's smallest normal number);
- latency: median (and 90th percentile) of --calls calls on one image (batch 1), each a different test image, after
  --warmup calls, timed around the runtime's call alone (LiteRT: set_tensor, invoke, get_tensor).
--test_data is an .npz with `images` uint8 [N,28,28,1] and `labels`; without it the test split comes from
fmnist.data.dataset, which imports TensorFlow. Each record says whether TensorFlow was imported by then: with .tflite
and .onnx models and --test_data it is not, so the figures are the deploy runtimes' alone.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags

from fmnist.errors import UserError, exit_on_user_error
from fmnist.predict import runtimes
from fmnist.runtime import console

_TEST_DATA = flags.DEFINE_string("test_data", None, "An .npz with images uint8 [N,28,28,1] and labels [N]; default "
                                 "the Fashion-MNIST test split (fmnist.data.dataset, imports TensorFlow).")
_CALLS = flags.DEFINE_integer("calls", 200, "Timed single-image calls per model.", lower_bound=1)
_WARMUP = flags.DEFINE_integer("warmup", 20, "Untimed single-image calls before them.", lower_bound=0)
_BATCH = flags.DEFINE_integer("batch_size", 1000, "Batch size of the accuracy pass.", lower_bound=1)
_THREADS = flags.DEFINE_integer("threads", 0, "Runtime threads for .tflite/.onnx models; 0: the runtime's default.",
                                lower_bound=0)
_JSON = flags.DEFINE_bool("json", False, "One JSON record per model instead of a markdown table.")


def load_test_data(path: str | None) -> tuple[np.ndarray, np.ndarray]:
    if path is None:
        from fmnist.data import dataset

        test = dataset.load()[0]["test"]
        return test.images, test.labels
    try:
        with np.load(path) as data:
            return data["images"], data["labels"]
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"cannot read --test_data={path} ({e}); it must be an .npz with images and labels") from None


def saved_model_classifier(path: str):
    """The SavedModel's serving_default as a runtimes.PixelClassifier (uint8 [N,28,28,1] -> probabilities)."""
    from fmnist.predict.classify import resolve_model_dir

    folder = resolve_model_dir(path)
    import tensorflow as tf

    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]

    def classify(images: np.ndarray) -> np.ndarray:
        return signature(images=tf.constant(images))["probabilities"].numpy()

    classify.path = folder
    return classify


def size_bytes(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(path: str, images: np.ndarray, labels: np.ndarray) -> dict:
    threads = _THREADS.value or None
    if runtimes.is_model_file(path):
        classify = runtimes.load(path, num_threads=threads)
    else:
        classify = saved_model_classifier(path)
    probabilities = np.concatenate([classify(images[i:i + _BATCH.value]) for i in range(0, len(images), _BATCH.value)])
    predicted = probabilities.argmax(-1)
    times = []
    for i in range(_WARMUP.value + _CALLS.value):
        image = images[i % len(images)][None]
        start = time.perf_counter()
        classify(image)
        times.append(time.perf_counter() - start)
    times = sorted(times[_WARMUP.value:])
    return {"model": str(classify.path), "runtime": runtime_name(path), "size_bytes": size_bytes(Path(classify.path)),
            "accuracy": float((predicted == labels).mean()), "loss": cross_entropy(probabilities, labels),
            "examples": len(labels),
            "latency_ms_median": 1e3 * statistics.median(times),
            "latency_ms_p90": 1e3 * times[min(len(times) - 1, int(0.9 * len(times)))], "calls": len(times),
            "threads": threads or "default", "tensorflow_imported": "tensorflow" in sys.modules}


def cross_entropy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean -ln p(label), in float64, with p floored at float32's smallest normal number (an underflowed 0)."""
    chosen = probabilities[np.arange(len(labels)), labels].astype(np.float64)
    return float(-np.log(np.maximum(chosen, np.finfo(np.float32).tiny)).mean())


def runtime_name(path: str) -> str:
    suffix = Path(path).suffix.lower()
    return {".tflite": "LiteRT", ".onnx": "ONNX Runtime"}.get(suffix, "TensorFlow")


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one model: a .tflite or .onnx file, or a SavedModel")
    console.configure()  # Only fmnist's lines unless --verbosity>=1 (LiteRT's notice, TensorFlow's and TFDS's).
    images, labels = load_test_data(_TEST_DATA.value)
    records = [measure(path, images, labels) for path in argv[1:]]
    if _JSON.value:
        for record in records:
            print(json.dumps(record), flush=True)
        return
    print("| model | runtime | size | test accuracy | latency, batch 1 (median / p90) |")
    print("| --- | --- | --- | --- | --- |")
    for r in records:
        print(f"| {r['model']} | {r['runtime']} | {r['size_bytes'] / 1e3:,.0f} kB | {r['accuracy']:.2%} | "
              f"{r['latency_ms_median']:.3f} / {r['latency_ms_p90']:.3f} ms |")


if __name__ == "__main__":
    app.run(main)
