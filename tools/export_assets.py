"""Write the ONNX files that the CPU inference path runs, from the shipped PyTorch weights.

    python tools/export_assets.py        (make onnx-assets; make default-model runs it too)

- ``assets/default.onnx``: the bundled model's graph, its weights read from ``assets/default.safetensors``
  (so re-run this whenever that file changes: tests/inference/test_backends.py fails until then, and
  analyze falls back to PyTorch with a warning);
- ``assets/mtcnn/{pnet,rnet,onet}.onnx``: the face detector's nets, from ``assets/mtcnn/*.pt``;
- ``assets/dlib/dlib_resnet.onnx``: the face descriptor (dlib's face-recognition ResNet), its weights
  read from ``assets/dlib/dlib_resnet.safetensors`` like default.onnx's.

Each is checked against PyTorch as it is written.
"""
from __future__ import annotations

from affectlab.analyze.export import export_bundled_graph
from affectlab.faces.descriptor_torch import export_onnx as export_descriptor
from affectlab.faces.mtcnn_torch import export_onnx as export_mtcnn
from affectlab.inference.backends import ASSETS, DEFAULT_GRAPH, DEFAULT_MODEL


def main() -> None:
    graph = export_bundled_graph(DEFAULT_MODEL, DEFAULT_GRAPH)
    print(f"wrote {graph} ({graph.stat().st_size / 1e3:.0f} kB; weights from {DEFAULT_MODEL.name})")
    for path in export_mtcnn(ASSETS / "mtcnn"):
        print(f"wrote {path} ({path.stat().st_size / 1e3:.0f} kB)")
    graph = export_descriptor()
    print(f"wrote {graph} ({graph.stat().st_size / 1e3:.0f} kB; weights from dlib_resnet.safetensors)")


if __name__ == "__main__":
    main()
