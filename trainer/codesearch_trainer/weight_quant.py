"""Weight-only int8 for an ONNX encoder: int8 weights on disk, fp32 arithmetic at run time.

Every MatMul whose second input is a 2-D float initializer gets it as int8 with one scale per
output column, followed by a ``DequantizeLinear``; every Gather from a large 2-D float table (the
word embeddings) reads the int8 table and dequantises the rows it gathered, with one scale per
hidden dimension. Activations stay fp32, so unlike dynamic quantisation (which quantises each
activation tensor with one scale computed over the whole batch) an embedding does not depend on
the other texts in its batch, and the error is only the weights' rounding. The file is about a
quarter of the fp32 one; onnxruntime folds the constant dequantisation at load, so the speed is
that of the fp32 graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

MIN_ELEMENTS = 1024  # smaller matrices stay fp32
MIN_TABLE_ROWS = 128  # Gather tables with fewer rows (e.g. token types) stay fp32


def _int8_per_axis(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per index of ``axis`` (absolute maximum → 127)."""
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    scale = np.maximum(np.abs(w).max(axis=reduce), np.finfo(np.float32).tiny) / 127.0
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, scale.astype(np.float32)


def quantize_weights(model: Any) -> int:
    """Rewrite ``model`` (an ``onnx.ModelProto``) in place; returns how many tensors became int8."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            consumers[name] = consumers.get(name, 0) + 1
    head: list[Any] = []
    body: list[Any] = []
    done = 0

    def replace(name: str, axis: int) -> tuple[str, str, str] | None:
        tensor = inits.get(name)
        if tensor is None or consumers.get(name, 0) != 1:
            return None
        w = numpy_helper.to_array(tensor)
        if w.ndim != 2 or w.dtype != np.float32:
            return None
        q, scale = _int8_per_axis(w, axis)
        graph.initializer.remove(tensor)
        del inits[name]
        names = (f"{name}_int8", f"{name}_scale", f"{name}_zero")
        graph.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(scale, names[1]),
                                  numpy_helper.from_array(np.zeros(scale.shape, np.int8), names[2])])
        return names

    for node in graph.node:
        body.append(node)
        if node.op_type == "MatMul" and node.input[1] in inits:
            w = numpy_helper.to_array(inits[node.input[1]])
            names = replace(node.input[1], axis=1) if w.size >= MIN_ELEMENTS else None
            if names:
                node.input[1] = f"{names[0]}_dq"
                head.append(helper.make_node("DequantizeLinear", list(names), [node.input[1]], axis=1))
                done += 1
        elif node.op_type == "Gather" and node.input[0] in inits:
            table = numpy_helper.to_array(inits[node.input[0]])
            names = replace(node.input[0], axis=1) if table.ndim == 2 and table.shape[0] >= MIN_TABLE_ROWS else None
            if names:
                out = node.output[0]
                node.input[0], node.output[0] = names[0], f"{out}_int8"
                body.append(helper.make_node("DequantizeLinear", [node.output[0], names[1], names[2]], [out],
                                             axis=-1))
                done += 1
    del graph.node[:]
    graph.node.extend(head + body)  # the weights' dequantisation depends on initializers only
    return done
