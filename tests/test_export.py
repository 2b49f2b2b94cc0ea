"""fastgeo.export.to_onnx: a standard ONNX graph whose ONNX Runtime output is net.forward."""

import sys

import numpy as np
import pytest

import fastgeo

onnx = pytest.importorskip("onnx")
from fastgeo.export import INPUT_NAME, OUTPUT_NAME, to_onnx

ACTS = sorted(fastgeo.ACTIVATIONS)
#: max |ORT - net.forward| per dtype (ORT sums in its own order)
ATOL = {"float32": 1e-6, "float64": 1e-13}
HIDDEN_OP = {"sigmoid": "Sigmoid", "relu": "Relu", "tanh": "Tanh", "leaky_relu": "PRelu"}


def _session(model):
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("activation", ACTS)
def test_graph_is_plain_matmul_add_activation(activation):
    net = fastgeo.MLP((3, 5, 4, 2), activation, seed=1)
    model = to_onnx(net)
    onnx.checker.check_model(model)
    ops = [n.op_type for n in model.graph.node]
    hidden = [n.op_type for n in
              fastgeo.activations.get(activation).onnx(onnx.helper, "z", "a", "l")[0]]
    if activation in HIDDEN_OP:  # one standard operator where ONNX has one
        assert hidden == [HIDDEN_OP[activation]]
    assert ops == ["MatMul", "Add", *hidden, "MatMul", "Add", *hidden, "MatMul", "Add",
                   "Sigmoid"]
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and dims[1].dim_value == 3
    assert model.graph.output[0].type.tensor_type.shape.dim[1].dim_value == 2
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"sizes": "3,5,4,2", "activation": activation, "head": "sigmoid"}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTS)
@pytest.mark.parametrize("sizes", [(2, 8, 8, 1), (3, 1), (4, 7, 3, 5, 2)])
def test_onnxruntime_output_equals_forward(sizes, activation, dtype):
    net = fastgeo.MLP(sizes, activation, seed=3, dtype=dtype)
    # move off ReLU's kink and give the biases a value
    for b in net.biases:
        b[...] = np.linspace(-0.3, 0.3, b.size)
    X = np.random.RandomState(0).randn(33, sizes[0]).astype(dtype)
    got = _session(to_onnx(net)).run(None, {INPUT_NAME: X})[0]
    assert got.dtype == np.dtype(dtype) and got.shape == (33, sizes[-1])
    np.testing.assert_allclose(got, net.forward(X), rtol=0, atol=ATOL[dtype])


def test_batch_is_dynamic_and_batch_one_works():
    net = fastgeo.MLP((2, 8, 8, 1), "relu", dtype="float32")
    sess = _session(to_onnx(net))
    for n in (1, 2, 1000):
        X = np.random.RandomState(n).randn(n, 2).astype(np.float32)
        np.testing.assert_allclose(sess.run(None, {INPUT_NAME: X})[0], net.forward(X),
                                   atol=ATOL["float32"], rtol=0)


def test_export_copies_the_weights_and_saves_to_a_path(tmp_path):
    net = fastgeo.MLP((2, 8, 8, 1), "sigmoid", dtype="float64")
    X = np.random.RandomState(0).randn(50, 2)
    before = net.forward(X)
    path = tmp_path / "net.onnx"
    model = to_onnx(net, path)
    net.params[...] += 1.0  # training after export must not change the exported model
    loaded = onnx.load(str(path))
    assert loaded.SerializeToString() == model.SerializeToString()
    np.testing.assert_allclose(_session(loaded).run(None, {INPUT_NAME: X})[0], before,
                               atol=ATOL["float64"], rtol=0)


def test_trained_net_exports_what_it_learned():
    from sklearn.datasets import make_moons

    X, y = make_moons(200, noise=0.1, random_state=0)
    net = fastgeo.MLP((2, 8, 8, 1), "relu", dtype="float32")
    net.fit(X, y, 200, 0.5)
    X32 = X.astype(np.float32)
    p = _session(to_onnx(net)).run(None, {INPUT_NAME: X32})[0]
    np.testing.assert_allclose(p, net.forward(X32), atol=ATOL["float32"], rtol=0)
    assert np.mean((p[:, 0] >= 0.5) == y) == net.score(X, y)


def test_missing_onnx_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"fastgeo\[onnx\]"):
        to_onnx(fastgeo.MLP((2, 3, 1)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("head", ["softmax", "identity"])
def test_heads_export_and_equal_forward(head, dtype):
    net = fastgeo.MLP((3, 6, 4), "tanh", seed=1, dtype=dtype, head=head)
    X = np.random.RandomState(2).randn(17, 3).astype(dtype)
    model = to_onnx(net)
    got = _session(model).run(None, {INPUT_NAME: X})[0]
    assert model.graph.output[0].name == ("predictions" if head == "identity"
                                          else "probabilities")
    scale = np.abs(net.forward(X)).max()
    np.testing.assert_allclose(got, net.forward(X), rtol=0, atol=ATOL[dtype] * scale)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimators_export_their_net():
    from fastgeo import MLPClassifier, MLPRegressor
    rng = np.random.RandomState(0)
    X = rng.randn(60, 3)
    clf = MLPClassifier((5,), max_iter=5, random_state=0).fit(X, rng.randint(0, 3, 60))
    p = _session(to_onnx(clf)).run(None, {INPUT_NAME: X})[0]
    np.testing.assert_allclose(p, clf.predict_proba(X), atol=1e-12)
    reg = MLPRegressor(hidden_layer_sizes=(5,), max_iter=5, random_state=0).fit(X, X[:, 0])
    t = _session(to_onnx(reg)).run(None, {INPUT_NAME: X})[0]
    np.testing.assert_allclose(t[:, 0], reg.predict(X), atol=1e-12)
    with pytest.raises(TypeError, match="fitted"):
        to_onnx(MLPRegressor())
