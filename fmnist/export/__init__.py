"""Export: a training run's model restored from its workdir (restore) and written for serving or deployment,
one module per format (saved_model, litert, onnx; file_export is what the file formats share); formats picks the
format and the output, and `python -m fmnist.export` is the command (__main__). An export reads a workdir, it
never trains: each file is checked with the runtime that serves it (fmnist.predict).

Never imports: fmnist.training, fmnist.main.
"""
