"""onnxruntime sessions as affectlab runs them: the CPU provider, quiet, threads that sleep when idle."""
from __future__ import annotations

import os
from typing import Any


def cpu_session(model: bytes | str | os.PathLike[str]) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU for a model file or its bytes.

    Idle worker threads sleep instead of spinning: detection calls the small MTCNN nets many times
    with numpy work in between, and spinning threads then compete with that work (and with anything
    else on the machine). Measured on 2 busy cores: MTCNN 134 -> 77 ms a 640x360 frame (bench/detection.py)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    threads = os.environ.get("OMP_NUM_THREADS", "")
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
    source = model if isinstance(model, bytes) else os.fspath(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
