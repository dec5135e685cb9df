"""Learned engines: one runtime interface over TensorRT, ONNX Runtime and torch (runtime.py),
the TensorRT plan cache (cache.py), the speech detector (speech.py), the audio-visual engine
(av.py) and the pipeline stage that runs them (stage.py)."""
