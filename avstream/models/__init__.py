"""PyTorch networks of the learned engines, their export to ONNX and their checkpoints.

Needs the ``train`` extra (torch); the node itself runs the exported ONNX files without torch.
"""
from .av_net import AVNet, export_onnx, load_checkpoint, save_checkpoint  # noqa: F401
