"""The real Fashion-MNIST data: counts, shapes, balance, and refusal of corrupt or missing files."""

import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest

from fmnist.data import dataset
from fmnist.data import pipeline as input_pipeline
from fmnist.errors import DataError


def test_splits_are_complete_and_balanced(splits):
    data, names = splits
    assert len(data["train"]) == 60000 and len(data["test"]) == 10000
    assert len(names) == 10 and names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    assert names == list(dataset.CLASS_NAMES)
    for split, per_class in (("train", 6000), ("test", 1000)):
        s = data[split]
        assert s.images.shape == (len(s), 28, 28, 1) and s.images.dtype == np.uint8
        assert s.labels.min() == 0 and s.labels.max() == 9
        assert np.bincount(s.labels).tolist() == [per_class] * 10
    assert abs(data["train"].images.mean() - 72.94) < 0.01


def test_validation_hold_out_is_disjoint_seeded_and_from_the_train_split(splits):
    train = splits[0]["train"]
    ids = dataset.Split(np.arange(len(train)), train.labels)  # Example ids in place of images: overlap is exact.
    rest, val = input_pipeline.hold_out(ids, 5000, seed=0)
    assert len(val) == 5000 and len(rest) == 55000
    assert not set(val.images) & set(rest.images) and len(set(val.images) | set(rest.images)) == len(train)
    assert (train.labels[val.images] == val.labels).all() and (train.labels[rest.images] == rest.labels).all()
    again, other = input_pipeline.hold_out(ids, 5000, seed=0)[1], input_pipeline.hold_out(ids, 5000, seed=1)[1]
    assert np.array_equal(val.images, again.images) and not np.array_equal(val.images, other.images)
    real_val = input_pipeline.hold_out(train, 5000, seed=0)[1]
    assert np.array_equal(real_val.images, train.images[val.images])
    assert np.bincount(real_val.labels, minlength=10).min() > 400  # A random draw keeps every class present.


def _copy_source(tmp_path: Path) -> Path:
    src = dataset.local_source_dir()
    assert src is not None, "make setup installs the IDX files"
    dst = tmp_path / "idx"
    shutil.copytree(src, dst)
    return dst


def test_corrupt_file_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    src = _copy_source(tmp_path)
    target = src / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[100] ^= 0xFF
    target.write_bytes(gzip.compress(bytes(raw)))
    monkeypatch.setenv(dataset.ENV_DIR, str(src))
    data_dir = tmp_path / "tfds"
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz is corrupt.*expected 0402a96d"):
        dataset.prepare(str(data_dir))
    assert not (data_dir / dataset.DATASET).exists()
    assert not dataset.is_prepared(data_dir)


def test_truncated_file_is_refused(tmp_path, monkeypatch):
    src = _copy_source(tmp_path)
    target = src / "train-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-200])
    monkeypatch.setenv(dataset.ENV_DIR, str(src))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz is unreadable.*expected.*bad3541b"):
        dataset.prepare(str(tmp_path / "tfds"))


def test_missing_file_in_env_dir_is_named(tmp_path, monkeypatch):
    src = _copy_source(tmp_path)
    (src / "train-images-idx3-ubyte.gz").unlink()
    monkeypatch.setenv(dataset.ENV_DIR, str(src))
    with pytest.raises(DataError, match=r"lacks train-images-idx3-ubyte\.gz"):
        dataset.prepare(str(tmp_path / "tfds"))


def test_differently_compressed_files_extract_to_the_same_bytes(tmp_path):
    """Zalando's and Debian's .gz differ, the content does not: any compression of the right bytes is accepted, and
    gives the very IDX bytes that dataset.prepare builds the TFDS dataset from. (`make data` prepares the data dir so
    from Debian's re-compressed files before `make test`; test_splits_are_complete_and_balanced checks what it built.
    Building it again here, 70,000 PNG encodings, took 19 s.)"""
    src = _copy_source(tmp_path)
    for f in src.glob("*.gz"):
        f.write_bytes(gzip.compress(gzip.decompress(f.read_bytes()), compresslevel=1, mtime=0))
    (tmp_path / "original").mkdir()
    (tmp_path / "recompressed").mkdir()
    original = dataset.extract_verified(dataset.local_source_dir(), tmp_path / "original")
    recompressed = dataset.extract_verified(src, tmp_path / "recompressed")
    assert original.keys() == recompressed.keys() == dataset.IDX_FILES.keys()
    for name, path in recompressed.items():
        assert path.read_bytes() == original[name].read_bytes(), name


def test_no_local_files_and_no_network_says_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.delenv(dataset.ENV_DIR, raising=False)
    monkeypatch.setattr(dataset, "DEBIAN_DIR", str(tmp_path / "absent"))
    # The download host made unreachable, as on this machine: on a networked host the probe would succeed.
    monkeypatch.setattr(dataset, "DOWNLOAD_HOST", "download.invalid")
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist"):
        dataset.prepare(str(tmp_path / "tfds"))


def test_unwritable_data_dir_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DataError, match=r"cannot write the data dir .*pass a writable one with --config.data_dir"):
        dataset.prepare(str(tmp_path / "file" / "tfds"))


def test_training_and_evaluation_datasets_are_infinite(splits):
    """The loops read exact step counts; an infinite dataset spares MultiWorkerMirroredStrategy its per-step
    all-reduce that checks every worker still has data (input_lib's get_next_as_optional, taken for finite ones)."""
    import tensorflow as tf

    data = splits[0]
    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    train = input_pipeline.train_dataset(data["train"], ctx, global_batch=64, seed=0, steps_per_epoch=10,
                                         start_step=3, total_steps=20)
    test = input_pipeline.eval_dataset(data["test"], ctx, global_batch=64)
    assert train.cardinality() == tf.data.INFINITE_CARDINALITY == test.cardinality()
