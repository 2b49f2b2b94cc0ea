"""Export a fastgeo net as a standard ONNX graph (optional extra ``fastgeo[onnx]``).

    from fastgeo.export import to_onnx
    model = to_onnx(net, "net.onnx")          # onnx.ModelProto, also written to the path
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString())
    p = sess.run(None, {"X": X.astype(np.float32)})[0]   # == net.forward(X)

The graph is plain ONNX (opset 17): per layer ``MatMul`` then ``Add``, the hidden
activation as its registry entry writes it (``fastgeo.activations``: ``Sigmoid``,
``Relu``, ``Tanh``, ``PRelu`` with slope 0.01 for leaky ReLU, standard operators composed
for the others), and the head on the output: ``Sigmoid``, ``Softmax`` over the outputs,
or ``Identity``. Input ``X`` of shape (batch, sizes[0]); output ``probabilities`` (sigmoid
and softmax heads) or ``predictions`` (identity) of shape (batch, sizes[-1]); batch
dynamic, the net's dtype (float32 or float64). Weights are copied in as initializers, so
later training of the net does not change the export. A fitted ``MLPClassifier`` or
``MLPRegressor`` exports its net (``net_``): the classifier's probabilities of the positive
class (two classes) or of each class.
"""

import numpy as np

from . import activations

#: ONNX opset and IR version: old enough for any onnxruntime >= 1.13
OPSET = 17
IR_VERSION = 8

INPUT_NAME = "X"
OUTPUT_NAME = "probabilities"
#: the output's name per head, and its ONNX operator
OUTPUTS = {"sigmoid": (OUTPUT_NAME, "Sigmoid"), "softmax": (OUTPUT_NAME, "Softmax"),
           "identity": ("predictions", "Identity")}


def to_onnx(net, path=None, name="fastgeo_mlp"):
    """The net (a ``fastgeo.MLP``, or a fitted estimator's) as an ``onnx.ModelProto``
    (written to ``path`` too when given).

    ImportError naming the extra if the ``onnx`` package is not installed.
    """
    if not hasattr(net, "weights"):  # an estimator: its fitted net
        if not hasattr(net, "net_"):
            raise TypeError(f"to_onnx takes a fastgeo.MLP or a fitted fastgeo estimator, "
                            f"got {type(net).__name__}")
        net = net.net_
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "fastgeo.export.to_onnx needs the onnx package: pip install 'fastgeo[onnx]'"
        ) from e

    elem = {np.dtype(np.float32): TensorProto.FLOAT,
            np.dtype(np.float64): TensorProto.DOUBLE}[np.dtype(net.dtype)]
    n_layers = len(net.weights)
    nodes, inits, constants = [], [], {}
    activation = activations.get(net.activation).onnx
    src = INPUT_NAME
    for l, (W, b) in enumerate(zip(net.weights, net.biases), start=1):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(W), f"W{l}"))
        inits.append(numpy_helper.from_array(np.ascontiguousarray(b), f"b{l}"))
        nodes.append(helper.make_node("MatMul", [src, f"W{l}"], [f"xW{l}"]))
        nodes.append(helper.make_node("Add", [f"xW{l}", f"b{l}"], [f"z{l}"]))
        if l < n_layers:
            layer_nodes, layer_constants = activation(helper, f"z{l}", f"a{l}", f"l{l}")
            nodes.extend(layer_nodes)
            constants.update(layer_constants)
            src = f"a{l}"
        else:
            output, op = OUTPUTS[net.head]
            extra = {"axis": 1} if op == "Softmax" else {}
            nodes.append(helper.make_node(op, [f"z{l}"], [output], **extra))
    for cname, value in constants.items():  # in the net's dtype: exact in float64
        inits.append(numpy_helper.from_array(np.array([value], dtype=net.dtype), cname))
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, elem, ["batch", net.sizes[0]])],
        [helper.make_tensor_value_info(OUTPUTS[net.head][0], elem, ["batch", net.sizes[-1]])],
        initializer=inits,
    )
    model = helper.make_model(
        graph,
        producer_name="fastgeo",
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string=f"fastgeo MLP sizes={list(net.sizes)} activation={net.activation} "
                   f"head={net.head}",
    )
    model.ir_version = IR_VERSION
    helper.set_model_props(model, {"sizes": ",".join(map(str, net.sizes)),
                                   "activation": net.activation, "head": net.head})
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model
