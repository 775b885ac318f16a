"""Launchers for fmnist: local multi-worker processes, Kubernetes TFJob, Vertex AI CustomJob, Cloud TPU VM.

See launch/README.md for each launcher's command and what has been run versus only built.
"""
