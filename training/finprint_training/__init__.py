"""finprint-training: trains and exports finprint's fish re-identification encoders.

Identification (ArcFace/softmax over individual/flank keys) plus inpainting of task-specific masks of
the skin pattern as an auxiliary task; ONNX export with a model card the daemon's embedder reads.
"""

__version__ = "0.1.0"
