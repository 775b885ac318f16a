"""Fashion-MNIST through TFDS, offline: find the IDX files, verify them, prepare `fashion_mnist` once, load it.

TFDS's own download checks the .gz files' checksums; Debian's `dataset-fashion-mnist` re-compresses them, so those
checksums reject perfectly good data. Here the *decompressed* bytes are verified instead, which accepts both the
Debian files and Zalando's originals, and the standard `fashion_mnist` dataset is then written by a subclass of TFDS's
own builder that reads the verified local files. Later runs just `tfds.load` it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import gzip
import hashlib
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmnist.errors import DataError

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
ENV_DIR = "FASHION_MNIST_DIR"
DATASET = "fashion_mnist"
DOWNLOAD_HOST = "fashion-mnist.s3-website.eu-central-1.amazonaws.com"
NUM_CLASSES = 10
# Fashion-MNIST's labels, in label order, as TFDS names them (tests check `load` returns exactly these).
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
IMAGE_SHAPE = (28, 28, 1)

# SHA-256 and size of the decompressed IDX files (identical for the Zalando and the Debian .gz files).
IDX_FILES = {
    "train-images-idx3-ubyte": (47040016, "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
    "train-labels-idx1-ubyte": (60008, "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
    "t10k-images-idx3-ubyte": (7840016, "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
    "t10k-labels-idx1-ubyte": (10008, "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
}

HOW_TO_GET_DATA = (
    "install Debian's package (`sudo apt-get install dataset-fashion-mnist`), or put the four Zalando "
    f"*-ubyte.gz files in a folder and set {ENV_DIR} to it, or run once with internet access"
)


@dataclass(frozen=True)
class Split:
    """One split held in memory: uint8 images [N, 28, 28, 1] and int32 labels [N]."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def local_source_dir() -> Path | None:
    """The folder holding the four IDX files: $FASHION_MNIST_DIR, else Debian's, else None."""
    env = os.environ.get(ENV_DIR)
    if env:
        path = Path(env)
        missing = [n for n in IDX_FILES if _idx_source(path, n) is None]
        if missing:
            raise DataError(f"{ENV_DIR}={env} lacks {missing[0]}.gz; point it at a folder with all four "
                            "Fashion-MNIST *-ubyte.gz files")
        return path
    path = Path(DEBIAN_DIR)
    return path if all(_idx_source(path, n) for n in IDX_FILES) else None


def _idx_source(folder: Path, name: str) -> Path | None:
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def extract_verified(src: Path, dst: Path) -> dict[str, Path]:
    """Decompresses the four IDX files from `src` into `dst`, checking each one's SHA-256."""
    out = {}
    for name, (size, sha) in IDX_FILES.items():
        source = _idx_source(src, name)
        if source is None:
            raise DataError(f"{src} lacks {name}.gz; {HOW_TO_GET_DATA}")
        target = dst / name
        digest = hashlib.sha256()
        try:
            opener = gzip.open if source.suffix == ".gz" else open
            with opener(source, "rb") as f, open(target, "wb") as g:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
                    g.write(chunk)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{source} is unreadable ({e}); expected decompressed SHA-256 {sha}. "
                            f"Reinstall it: {HOW_TO_GET_DATA}") from None
        if digest.hexdigest() != sha:
            raise DataError(f"{source} is corrupt: decompressed SHA-256 is {digest.hexdigest()}, expected {sha} "
                            f"({size} bytes). Replace it: {HOW_TO_GET_DATA}")
        out[name] = target
    return out


def _local_builder_class():
    """TFDS's own FashionMNIST builder, reading already verified local IDX files instead of downloading."""
    import tensorflow_datasets as tfds
    from tensorflow_datasets.image_classification import mnist

    class LocalFashionMNIST(mnist.FashionMNIST, skip_registration=True):
        name = DATASET

        def __init__(self, *, idx_files: dict[str, Path], **kwargs):
            self._idx_files = idx_files
            super().__init__(**kwargs)

        def _split_generators(self, dl_manager):
            del dl_manager
            f = self._idx_files
            return [
                tfds.core.SplitGenerator(name=tfds.Split.TRAIN, gen_kwargs=dict(
                    num_examples=60000, data_path=str(f["train-images-idx3-ubyte"]),
                    label_path=str(f["train-labels-idx1-ubyte"]))),
                tfds.core.SplitGenerator(name=tfds.Split.TEST, gen_kwargs=dict(
                    num_examples=10000, data_path=str(f["t10k-images-idx3-ubyte"]),
                    label_path=str(f["t10k-labels-idx1-ubyte"]))),
            ]

    return LocalFashionMNIST


def resolve_data_dir(data_dir: str | None) -> Path:
    """The TFDS data dir: the config's, else $TFDS_DATA_DIR, else ~/tensorflow_datasets."""
    if data_dir:
        return Path(data_dir).expanduser()
    return Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def is_prepared(data_dir: Path) -> bool:
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(DATASET, data_dir=str(data_dir)).is_prepared()
    except Exception:  # noqa: BLE001 - an unreadable dataset_info.json counts as not prepared.
        return False


@contextlib.contextmanager
def _prepare_lock(data_dir: Path):
    """Serialises preparation between processes (several workers may start at once)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(data_dir / f".{DATASET}.prepare.lock", "w")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"cannot write the data dir {data_dir} ({e.strerror}); "
                        "pass a writable one with --config.data_dir=PATH or set TFDS_DATA_DIR") from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare(data_dir: str | None = None) -> Path:
    """Makes sure `fashion_mnist` is prepared in the TFDS data dir, from local files if any; returns the dir."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    root = resolve_data_dir(data_dir)
    if is_prepared(root):
        return root
    with _prepare_lock(root):
        if is_prepared(root):  # Another process prepared it while we waited.
            return root
        src = local_source_dir()
        if src is not None:
            with tempfile.TemporaryDirectory(prefix="fmnist-idx-", dir=root) as tmp:
                files = extract_verified(src, Path(tmp))
                builder = _local_builder_class()(idx_files=files, data_dir=str(root))
                _download_and_prepare(builder, root)
        elif not _reachable(DOWNLOAD_HOST):
            raise DataError(f"Fashion-MNIST is not in {root}, no local IDX files were found and {DOWNLOAD_HOST} "
                            f"is unreachable; {HOW_TO_GET_DATA}")
        else:
            _download_and_prepare(tfds.builder(DATASET, data_dir=str(root)), root, network=True)
    return root


def _reachable(host: str, timeout: float = 5.0) -> bool:
    """A quick TCP probe, so that an offline machine fails in seconds rather than after TFDS's retries."""
    try:
        socket.create_connection((host, 80), timeout=timeout).close()
        return True
    except OSError:
        return False


def _download_and_prepare(builder, root: Path, network: bool = False) -> None:
    """TFDS writes into an `incomplete` folder and renames it at the end: a failure leaves no half dataset."""
    try:
        builder.download_and_prepare(download_dir=str(root / "downloads"))
    except Exception as e:  # noqa: BLE001 - TFDS raises many types for a failed download or write.
        if network:
            raise DataError(f"the Fashion-MNIST download failed ({type(e).__name__}: {str(e)[:100]}); "
                            f"{HOW_TO_GET_DATA}") from None
        if isinstance(e, OSError):
            raise DataError(f"cannot prepare {DATASET} in {root} ({e.strerror or e}); free space or pass a "
                            "writable --config.data_dir") from None
        raise


@functools.lru_cache(maxsize=2)
def load(data_dir: str | None = None) -> tuple[dict[str, Split], list[str]]:
    """Prepares if needed, then returns {'train', 'test'} splits in memory and the class names (cached)."""
    import tensorflow_datasets as tfds

    root = prepare(data_dir)
    builder = tfds.builder(DATASET, data_dir=str(root))
    cache = root / "fmnist_cache" / f"{DATASET}-{builder.version}.npz"
    arrays = _read_cache(cache)
    if arrays is None:  # Decoding the 70,000 PNGs takes ~4 s; the decoded arrays load in ~0.1 s.
        arrays = {}
        for name in ("train", "test"):
            ds = builder.as_dataset(split=name, batch_size=-1, as_supervised=True, shuffle_files=False)
            images, labels = tfds.as_numpy(ds)
            arrays[f"{name}_images"], arrays[f"{name}_labels"] = images.astype(np.uint8), labels.astype(np.int32)
        _write_cache(cache, arrays)
    splits = {}
    for name in ("train", "test"):
        split = Split(images=arrays[f"{name}_images"], labels=arrays[f"{name}_labels"])
        split.images.flags.writeable = split.labels.flags.writeable = False  # Shared by the in-process cache.
        splits[name] = split
    return splits, list(builder.info.features["label"].names)


def _read_cache(path: Path) -> dict | None:
    """The decoded splits, or None when absent or unreadable (then rebuilt from TFDS)."""
    try:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        if len(arrays.get("train_labels", ())) == 60000 and len(arrays.get("test_labels", ())) == 10000:
            return arrays
    except (OSError, ValueError, KeyError):
        pass
    return None


def _write_cache(path: Path, arrays: dict) -> None:
    """Best effort and atomic: a read-only data dir just means decoding again next time."""
    try:
        path.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError:
        pass
