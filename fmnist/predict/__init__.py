"""Predict (serving): photos converted the way Fashion-MNIST was made (photo_conversion, also traced into the
SavedModel), the runtimes of the file formats (runtimes, runtime_litert, runtime_onnx), image files read, checked and
classified (classify), and `python -m fmnist.predict` (__main__). It needs an export only: no model code, no
checkpoint.

Never imports: fmnist.models, fmnist.training, fmnist.workdir, fmnist.export, fmnist.main.
"""
