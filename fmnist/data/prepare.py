"""Prepares the TFDS `fashion_mnist` dataset once (from local IDX files when present): `make data` runs this.

  python -m fmnist.data.prepare [--data_dir=DIR]
"""

from absl import app, flags

from fmnist.errors import exit_on_user_error
from fmnist.runtime import console

_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir ('' = $TFDS_DATA_DIR or ~/tensorflow_datasets).")


@exit_on_user_error
def main(argv: list[str]) -> None:
    del argv
    console.configure()  # Only fmnist's lines unless --verbosity>=1.
    from fmnist.data import dataset

    root = dataset.prepare(_DATA_DIR.value or None)
    print(f"fashion_mnist is ready in {root}")


if __name__ == "__main__":
    app.run(main)
