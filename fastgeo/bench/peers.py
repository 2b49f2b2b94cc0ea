"""The implementations compared by ``fastgeo bench`` and ``tests/bench``.

Each one builds, for a workload, a *runner* from the same weights and data:
``runner.run()`` is the timed unit (one forward pass, one SGD step, or a whole fit that
restarts from the initial weights), ``runner.result()`` the comparable outcome as NumPy
(forward: probabilities (n, outputs); step/fit: the parameters W1..WL, b1..bL shaped as
fastgeo's), ``runner.reset()`` goes back to the initial weights. ``check`` compares a
runner's outcome with fastgeo's NumPy reference, in float64, outside any timed region.

Maths, everywhere: hidden activation, sigmoid output, mean binary cross-entropy over the
batch, plain SGD (no momentum, no weight decay), full batch in fits. Peers get inputs
already converted to their own arrays (torch tensors, jax arrays): the timed region is
the library's compute and call overhead, not the NumPy conversion.
"""

import functools
import importlib
import importlib.util
import warnings

import numpy as np

from .. import activations, reference
from ..article import notebook, protocol
from . import workloads as wl


def library_function(spec):
    """A registry entry's (dotted function path, keyword arguments) as the function."""
    path, kwargs = spec
    module, _, name = path.rpartition(".")
    fn = getattr(importlib.import_module(module), name)
    return functools.partial(fn, **kwargs) if kwargs else fn


def _TorchActivation(activation):
    """The registry's torch function for ``activation`` as an ``nn.Module``."""
    import torch

    fn = library_function(activations.get(activation).torch)

    class Activation(torch.nn.Module):
        def forward(self, x):
            return fn(x)

    return Activation()


def _as_list(Ws, bs):
    return [np.asarray(a, dtype=np.float64) for a in list(Ws) + list(bs)]


class Runner:
    def __init__(self, run, result, reset=lambda: None):
        self.run = run
        self.result = result
        self.reset = reset


class Implementation:
    """Base: ``name`` (table column, key), ``family`` (the worker process it runs in),
    ``requires`` (modules that must be importable), ``phases`` it takes part in."""

    name = ""
    label = ""
    family = ""
    requires = ()
    phases = ("forward", "step", "fit")
    optimizers = ("sgd",)
    heads = ("sigmoid",)
    threads = 1

    def unavailable(self):
        """None when usable, else the reason it is skipped (without importing it)."""
        for module in self.requires:
            if importlib.util.find_spec(module) is None:
                return f"{module} not installed (pip install 'fastgeo[peers]')"
        return None

    def skip_reason(self, workload, activation=None):
        if workload.phase not in self.phases:
            return f"{self.name} has no {workload.phase} workload"
        if workload.phase == "fit" and workload.optimizer not in self.optimizers:
            return f"{self.name} has no {workload.optimizer} fit here"
        if workload.head not in self.heads:
            return f"{self.name} has no {workload.head} head here"
        if activation is not None and not self.supports(activation):
            return f"{self.name} has no {activation} activation"
        return None

    def supports(self, activation):
        """Whether the library has the hidden ``activation`` (a registry name)."""
        return True

    def setup(self, threads):
        """Import the library and pin its threads (called once per process)."""
        self.threads = threads

    def versions(self):
        return {}

    def build(self, workload, activation, weights, biases, X, Y, epochs=None):
        phase = workload.phase
        epochs = workload.epochs if epochs is None else epochs
        if phase == "forward":
            if workload.head != "sigmoid":
                return self.forward(activation, weights, biases, X, head=workload.head)
            return self.forward(activation, weights, biases, X)
        if phase == "step":
            return self.step(activation, weights, biases, X, Y, workload.lr)
        if phase == "fit":
            if workload.training != {"optimizer": "sgd", "head": "sigmoid", "batch_size": None}:
                return self.fit(activation, weights, biases, X, Y, epochs, workload.lr,
                                **workload.training)
            return self.fit(activation, weights, biases, X, Y, epochs, workload.lr)
        if phase == "article":
            return self.article(epochs)
        raise ValueError(phase)


# --- fastgeo ---------------------------------------------------------------------------


class Fastgeo(Implementation):
    name = label = "fastgeo"
    family = "numba"
    phases = ("forward", "step", "fit", "article")
    optimizers = ("sgd", "adam")
    heads = ("sigmoid", "softmax", "identity")

    def setup(self, threads):
        super().setup(threads)
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))

    def versions(self):
        import numba

        from .._version import __version__

        return {"fastgeo": __version__, "numba": numba.__version__}

    def _net(self, activation, weights, biases, head="sigmoid"):
        from ..mlp import MLP

        return MLP.from_params(weights, biases, activation, backend="numba",
                               dtype=weights[0].dtype, head=head)

    def _param_runner(self, net, run):
        p0 = net.params.copy()

        def reset():
            net.params[...] = p0

        return Runner(run, lambda: _as_list(net.weights, net.biases), reset)

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        net = self._net(activation, weights, biases, head)
        box = {}

        def run():
            box["out"] = net.forward(X)

        return Runner(run, lambda: np.asarray(box["out"], np.float64))

    def step(self, activation, weights, biases, X, Y, lr):
        net = self._net(activation, weights, biases)
        return self._param_runner(net, lambda: net.train_step(X, Y, lr))

    def fit(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
            head="sigmoid", batch_size=None):
        net = self._net(activation, weights, biases, head)
        p0 = net.params.copy()

        def run():
            net.params[...] = p0
            # a fresh optimiser: every fit starts from zero moments
            net.fit(X, Y, epochs, optimizer=protocol.make_optimizer(optimizer, lr),
                    batch_size=batch_size)

        return self._param_runner(net, run)

    def article(self, epochs, backend="numba"):
        """Both nets of the article's protocol on fastgeo.MLP: the weight and permutation
        draws, the two fits and the test accuracies (the data arrays exist beforehand,
        as on the notebook's side)."""
        X_train, X_test, y_train, y_test = notebook.notebook_data()
        box = {}

        def run():
            nets, histories = protocol.train_nets(X_train, y_train, epochs=epochs,
                                                  backend=backend)
            box["out"] = {act: {"loss_history": histories[act],
                                "test_accuracy": nets[act].score(X_test, y_test)}
                          for act in nets}

        return Runner(run, lambda: box["out"])


class NumpyReference(Implementation):
    """fastgeo.reference: the textbook NumPy code (for the article row: the notebook)."""

    name = label = "numpy"
    family = "numpy"
    phases = ("forward", "step", "fit", "article")
    optimizers = ("sgd", "adam")
    heads = ("sigmoid", "softmax", "identity")

    def versions(self):
        return {"numpy": np.__version__}

    def _copies(self, weights, biases):
        return [W.copy() for W in weights], [b.copy() for b in biases]

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        box = {}

        def run():
            box["out"] = reference.predict_proba(weights, biases, X, activation, head)

        return Runner(run, lambda: np.asarray(box["out"], np.float64))

    def step(self, activation, weights, biases, X, Y, lr):
        Ws, bs = self._copies(weights, biases)

        def run():
            dWs, dbs = reference.gradients(Ws, bs, X, Y, activation)
            reference.sgd_step(Ws, bs, dWs, dbs, lr)

        def reset():
            for p, p0 in zip(Ws + bs, list(weights) + list(biases)):
                p[...] = p0

        return Runner(run, lambda: _as_list(Ws, bs), reset)

    def fit(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
            head="sigmoid", batch_size=None):
        Ws, bs = self._copies(weights, biases)

        def reset():
            for p, p0 in zip(Ws + bs, list(weights) + list(biases)):
                p[...] = p0

        def run():
            reset()
            reference.train(Ws, bs, X, Y, epochs, protocol.make_optimizer(optimizer, lr),
                            activation, head, batch_size=batch_size)

        return Runner(run, lambda: _as_list(Ws, bs), reset)

    def article(self, epochs):
        """The protocol with the notebook's own code (fastgeo.article.notebook)."""
        data = notebook.notebook_data()
        box = {}

        def run():
            box["out"] = notebook.run_notebook(epochs=epochs, data=data, witness=False)

        return Runner(run, lambda: box["out"])


# --- PyTorch -----------------------------------------------------------------------------


class Torch(Implementation):
    name = label = "torch"
    family = "torch"
    requires = ("torch",)
    compiled = False
    optimizers = ("sgd", "adam")
    heads = ("sigmoid", "softmax")

    def setup(self, threads):
        super().setup(threads)
        import torch

        torch.set_num_threads(threads)
        try:
            torch.set_num_interop_threads(threads)
        except RuntimeError:
            pass
        self.torch = torch

    def versions(self):
        return {"torch": self.torch.__version__,
                "torch_threads": self.torch.get_num_threads()}

    def _model(self, activation, weights, biases):
        torch = self.torch
        nn = torch.nn
        layers = []
        for l, (W, b) in enumerate(zip(weights, biases)):
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=torch.float32)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(np.asarray(b)))
            layers.append(lin)
            if l < len(weights) - 1:
                layers.append(_TorchActivation(activation))
        model = nn.Sequential(*layers)
        p0 = [p.detach().clone() for p in model.parameters()]

        def reset():
            with torch.no_grad():
                for p, q in zip(model.parameters(), p0):
                    p.copy_(q)

        def result():
            lins = [m for m in model if isinstance(m, nn.Linear)]
            return _as_list([m.weight.detach().numpy().T for m in lins],
                            [m.bias.detach().numpy() for m in lins])

        return model, reset, result

    def _callable(self, model):
        """The module to call: the model itself (eager) or its compiled version."""
        return model

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        torch = self.torch
        model, _, _ = self._model(activation, weights, biases)
        f = self._callable(model)
        Xt = torch.from_numpy(X)
        box = {}
        ctx = torch.no_grad if self.compiled else torch.inference_mode
        out = torch.sigmoid if head == "sigmoid" else (lambda z: torch.softmax(z, dim=1))

        def run():
            with ctx():
                box["out"] = out(f(Xt))

        return Runner(run, lambda: box["out"].numpy().astype(np.float64))

    def _step_fn(self, model, X, Y, lr, optimizer="sgd", head="sigmoid"):
        """One update on (X, Y), and the optimiser (torch.optim.SGD, or Adam: its epsilon
        sits next to sqrt(v / (1 - b2^t)), a hair from scikit-learn's place)."""
        torch = self.torch
        f = self._callable(model)
        if optimizer == "adam":
            opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
        else:
            opt = torch.optim.SGD(model.parameters(), lr=lr)
        if head == "softmax":
            loss_fn = torch.nn.functional.cross_entropy  # probabilities as the target
        else:
            loss_fn = torch.nn.functional.binary_cross_entropy_with_logits
        Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)

        def step(rows=slice(None)):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(f(Xt[rows]), Yt[rows])
            loss.backward()
            opt.step()
            return loss

        return step, opt

    def step(self, activation, weights, biases, X, Y, lr):
        model, reset, result = self._model(activation, weights, biases)
        return Runner(self._step_fn(model, X, Y, lr)[0], result, reset)

    def fit(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
            head="sigmoid", batch_size=None):
        model, reset, result = self._model(activation, weights, biases)
        n = X.shape[0]
        batches = [slice(s, s + batch_size) for s in range(0, n, batch_size)] \
            if batch_size and batch_size < n else [slice(None)]
        box = {}

        def run():
            reset()
            step, box["opt"] = self._step_fn(model, X, Y, lr, optimizer, head)  # fresh state
            for _ in range(epochs):
                for rows in batches:
                    step(rows)

        return Runner(run, result, reset)


class TorchCompile(Torch):
    name = label = "torch.compile"
    family = "torch.compile"
    compiled = True
    #: cold compiles take ~30 s here: left out of --quick unless asked for
    slow = True

    def _callable(self, model):
        self.torch._dynamo.reset()
        return self.torch.compile(model)


# --- JAX -----------------------------------------------------------------------------


class Jax(Implementation):
    """jax.jit forward; value_and_grad SGD step under jit; lax.fori_loop whole fit."""

    name = label = "jax"
    family = "jax"
    requires = ("jax",)
    optimizers = ("sgd", "adam")
    heads = ("sigmoid", "softmax")

    def setup(self, threads):
        super().setup(threads)
        import jax

        jax.config.update("jax_platforms", "cpu")
        self.jax = jax

    def versions(self):
        import jaxlib

        return {"jax": self.jax.__version__, "jaxlib": jaxlib.__version__}

    def _fns(self, activation, lr, head="sigmoid"):
        jax = self.jax
        jnp = jax.numpy
        act = library_function(activations.get(activation).jax)

        def logits(params, X):
            a = X
            for W, b in params[:-1]:
                a = act(a @ W + b)
            W, b = params[-1]
            return a @ W + b

        def loss(params, X, Y):
            z = logits(params, X)
            if head == "softmax":
                return -jnp.mean(jnp.sum(Y * jax.nn.log_softmax(z, axis=1), axis=1))
            # softplus(z) - z y: BCE from logits with the right gradient at z == 0 exactly
            # (max(z, 0) + log1p(exp(-|z|)) splits ties in jnp.maximum's gradient)
            return jnp.mean(jax.nn.softplus(z) - z * Y)

        def step(params, X, Y):
            value, grads = jax.value_and_grad(loss)(params, X, Y)
            return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), value

        def adam_step(state, X, Y, b1=0.9, b2=0.999, eps=1e-8):
            """scikit-learn's Adam, written out: state = (params, m, v, t)."""
            params, m, v, t = state
            value, grads = jax.value_and_grad(loss)(params, X, Y)
            t = t + 1
            m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
            v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
            rate = lr * jnp.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            params = jax.tree_util.tree_map(lambda p, m, v: p - rate * m / (jnp.sqrt(v) + eps),
                                            params, m, v)
            return (params, m, v, t), value

        return logits, step, adam_step

    def _params(self, weights, biases):
        jnp = self.jax.numpy
        return [(jnp.asarray(W), jnp.asarray(b)) for W, b in zip(weights, biases)]

    def _result(self, box):
        def result():
            params = box["params"]
            return _as_list([np.asarray(W) for W, _ in params], [np.asarray(b) for _, b in params])

        return result

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        jax = self.jax
        logits, _, _ = self._fns(activation, 0.0)
        out = jax.nn.sigmoid if head == "sigmoid" else (lambda z: jax.nn.softmax(z, axis=1))
        f = jax.jit(lambda p, X: out(logits(p, X)))
        params, Xj = self._params(weights, biases), jax.numpy.asarray(X)
        box = {}

        def run():
            box["out"] = f(params, Xj).block_until_ready()

        return Runner(run, lambda: np.asarray(box["out"], np.float64))

    def step(self, activation, weights, biases, X, Y, lr):
        jax = self.jax
        _, step, _ = self._fns(activation, lr)
        step = jax.jit(step)
        p0 = self._params(weights, biases)
        Xj, Yj = jax.numpy.asarray(X), jax.numpy.asarray(Y)
        box = {"params": p0}

        def run():
            box["params"], _ = jax.block_until_ready(step(box["params"], Xj, Yj))

        def reset():
            box["params"] = p0

        return Runner(run, self._result(box), reset)

    def fit(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
            head="sigmoid", batch_size=None):
        """The whole fit under one jit: lax.fori_loop over epochs, the epoch's mini-batches
        unrolled (static slices, in order)."""
        jax = self.jax
        jnp = jax.numpy
        _, step, adam = self._fns(activation, lr, head)
        n = X.shape[0]
        bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)] \
            if batch_size and batch_size < n else [(0, n)]
        if optimizer == "adam":
            def update(state, Xb, Yb):
                return adam(state, Xb, Yb)

            def start(params):
                zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
                return (params, zeros, zeros, jnp.zeros((), X.dtype))

            def params_of(state):
                return state[0]
        else:
            def update(state, Xb, Yb):
                return step(state, Xb, Yb)

            def start(params):
                return params

            def params_of(state):
                return state

        @jax.jit
        def fit(params, X, Y):
            def body(i, carry):
                state, losses = carry
                total = 0.0
                for a, b in bounds:
                    state, value = update(state, X[a:b], Y[a:b])
                    total = total + value
                return state, losses.at[i].set(total / len(bounds))

            state, losses = jax.lax.fori_loop(0, epochs, body,
                                              (start(params), jnp.zeros(epochs, X.dtype)))
            return params_of(state), losses

        p0 = self._params(weights, biases)
        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)
        box = {"params": p0}

        def run():
            box["params"], _ = jax.block_until_ready(fit(p0, Xj, Yj))

        def reset():
            box["params"] = p0

        return Runner(run, self._result(box), reset)


# --- scikit-learn ------------------------------------------------------------------------


class Sklearn(Implementation):
    """MLPClassifier(solver="sgd", momentum 0, alpha 0, full batch, no shuffle) started
    from the given weights (warm_start with coefs_/intercepts_ set): predict_proba,
    partial_fit (one full-batch step) and fit (max_iter epochs)."""

    name = label = "sklearn"
    family = "sklearn"
    requires = ("sklearn",)
    optimizers = ("sgd", "adam")
    heads = ("sigmoid", "softmax")

    def supports(self, activation):
        return activations.get(activation).sklearn is not None

    def versions(self):
        import sklearn

        return {"sklearn": sklearn.__version__}

    def _clf(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
             batch_size=None):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        n = X.shape[0]
        clf = MLPClassifier(
            hidden_layer_sizes=tuple(W.shape[1] for W in weights[:-1]),
            activation=activations.get(activation).sklearn,
            solver=optimizer, alpha=0.0, batch_size=batch_size or n, learning_rate="constant",
            learning_rate_init=lr, momentum=0.0, nesterovs_momentum=False, shuffle=False,
            max_iter=max(1, epochs), tol=0.0, n_iter_no_change=max(1, epochs) + 1,
            early_stopping=False, warm_start=True, random_state=0,
        )
        k = Y.shape[1]  # one column: 0/1 labels; K columns: one-hot rows (softmax)
        y = Y.ravel().astype(np.int64) if k == 1 else Y.argmax(axis=1)
        classes = np.arange(max(k, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.partial_fit(X, y, classes=classes)  # builds the attributes

        def reset():
            clf.coefs_ = [np.array(W) for W in weights]
            clf.intercepts_ = [np.array(b) for b in biases]
            clf.loss_curve_ = []

        reset()
        return clf, y, reset, lambda: _as_list(clf.coefs_, clf.intercepts_)

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        # labels only to build the model, which needs every class: K rows at least
        k = max(2, weights[-1].shape[1])
        Xb = X if X.shape[0] >= k else np.repeat(X, k, axis=0)
        labels = np.arange(Xb.shape[0]) % k
        Y = labels.reshape(-1, 1) if head == "sigmoid" else np.eye(k)[labels]
        clf, _, _, _ = self._clf(activation, weights, biases, Xb, Y, 1, 0.1)
        box = {}
        columns = slice(1, None) if head == "sigmoid" else slice(None)

        def run():
            box["out"] = clf.predict_proba(X)

        return Runner(run, lambda: np.asarray(box["out"][:, columns], np.float64))

    def step(self, activation, weights, biases, X, Y, lr):
        clf, y, reset, result = self._clf(activation, weights, biases, X, Y, 1, lr)
        return Runner(lambda: clf.partial_fit(X, y), result, reset)

    def fit(self, activation, weights, biases, X, Y, epochs, lr, optimizer="sgd",
            head="sigmoid", batch_size=None):
        from sklearn.exceptions import ConvergenceWarning

        clf, y, reset, result = self._clf(activation, weights, biases, X, Y, epochs, lr,
                                          optimizer, batch_size)

        def run():
            reset()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, y)

        return Runner(run, result, reset)


# --- ONNX Runtime ------------------------------------------------------------------------


class OnnxRuntime(Implementation):
    """The net exported by ``fastgeo.export.to_onnx``, run by an InferenceSession
    (intra-op threads pinned, inter-op 1, sequential execution). Inference only."""

    name = label = "onnxruntime"
    family = "onnxruntime"
    requires = ("onnx", "onnxruntime")
    phases = ("forward",)
    heads = ("sigmoid", "softmax", "identity")

    def skip_reason(self, workload, activation=None):
        if workload.phase not in self.phases:
            return "inference only"
        return None

    def setup(self, threads):
        super().setup(threads)
        import onnxruntime

        self.ort = onnxruntime

    def versions(self):
        import onnx

        return {"onnxruntime": self.ort.__version__, "onnx": onnx.__version__}

    def session(self, net):
        from ..export import to_onnx

        ort = self.ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(to_onnx(net).SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])

    def forward(self, activation, weights, biases, X, head="sigmoid"):
        from ..mlp import MLP

        net = MLP.from_params(weights, biases, activation, backend="numpy",
                              dtype=weights[0].dtype, head=head)
        sess = self.session(net)
        feed = {"X": X}
        box = {}

        def run():
            box["out"] = sess.run(None, feed)[0]

        return Runner(run, lambda: np.asarray(box["out"], np.float64))


IMPLEMENTATIONS = {impl.name: impl for impl in (
    Fastgeo(), NumpyReference(), Torch(), TorchCompile(), Jax(), Sklearn(), OnnxRuntime(),
)}

#: peers: everything but fastgeo and its NumPy reference
PEERS = tuple(n for n in IMPLEMENTATIONS if n not in ("fastgeo", "numpy"))

_ready = {}


def ready(name, threads=1):
    """(the implementation ``name``, set up once per process for ``threads``, None), or
    (None, the reason it is unavailable). KeyError for an unknown name."""
    impl = IMPLEMENTATIONS[name]
    reason = impl.unavailable()
    if reason:
        return None, reason
    if _ready.get(name) != threads:
        impl.setup(threads)
        _ready[name] = threads
    return impl, None


# --- the njit API's batch-1 latency --------------------------------------------------------

#: The row beside which ``fastgeo bench`` reports the njit API's batch-1 latency.
NJIT_API_WORKLOAD = "A-fwd-1"
#: forward calls per timed call of the njit loop
NJIT_API_CALLS = 1000

_njit_loop = None


def _njit_api_loop():
    """A user's own ``@njit`` loop: one sample through ``fastgeo.kernels.forward_into``
    per iteration, each output fed into the next input (nothing to hoist)."""
    global _njit_loop
    if _njit_loop is None:
        from numba import njit

        from fastgeo import kernels

        @njit
        def loop(params, sizes, code, x, out, packed, tile, calls):
            total = 0.0
            x0 = x[0, 0]
            for _ in range(calls):
                kernels.forward_into(params, sizes, code, x, out, packed, tile)
                total += out[0, 0]
                x[0, 0] = x0 + 1e-3 * out[0, 0]
            x[0, 0] = x0
            return total

        _njit_loop = loop
    return _njit_loop


def njit_api_latency(activation, weights, biases, X, quick=False):
    """Batch-1 latency of fastgeo's njit-callable kernel API (issue 11, item 8): seconds
    per ``kernels.forward_into`` call on the one sample X, called from inside a user's
    own ``@njit`` loop (no Python, no validation, the caller's workspace), shown beside
    the ``MLP.forward`` row ``NJIT_API_WORKLOAD``. The output is checked against
    ``reference.predict_proba``."""
    from .. import kernels
    from .timing import FULL, QUICK, measure

    dtype = np.asarray(weights[0]).dtype
    sizes = np.array([np.asarray(weights[0]).shape[0]]
                     + [np.asarray(W).shape[1] for W in weights], np.int64)
    params = np.concatenate([np.concatenate([np.ravel(W), b])
                             for W, b in zip(weights, biases)]).astype(dtype)
    code = activations.get(activation).code
    x = np.ascontiguousarray(X[:1], dtype=dtype)
    out = np.empty((1, int(sizes[-1])), dtype)
    packed, tile = kernels.workspace(sizes, dtype)
    loop = _njit_api_loop()
    t = measure(lambda: loop(params, sizes, code, x, out, packed, tile, NJIT_API_CALLS),
                **(QUICK if quick else FULL))
    loop(params, sizes, code, x, out, packed, tile, 1)
    want = reference.predict_proba([np.asarray(W, np.float64) for W in weights],
                                   [np.asarray(b, np.float64) for b in biases],
                                   x.astype(np.float64), activation)
    error = float(np.max(np.abs(out - want)))
    return {"available": True, "per_call_s": t["per_call_s"] / NJIT_API_CALLS,
            "what": "kernels.forward_into inside an @njit loop, 1 sample per call",
            "max_abs_error": error, "ok": error <= TOLERANCES["forward"]}


# --- apples to apples ---------------------------------------------------------------------

#: max |actual - expected| / max |expected| allowed, float32 against the float64 reference.
#: step and fit compare the parameter updates (after - before), not the parameters. Adam
#: fits ("fit-adam") compare the trained nets' outputs on X (max absolute difference):
#: Adam moves every parameter by about lr per step whatever the size of its gradient, so
#: float32 rounding of a near-zero gradient can flip that parameter's updates, which a
#: comparison of parameters would count as a failure though the nets agree.
TOLERANCES = {"forward": 1e-4, "step": 2e-3, "fit": 1e-2, "fit-adam": 5e-2, "article": 1.0}


def expected(workload, activation, weights, biases, X, Y, epochs=None):
    """fastgeo's NumPy reference outcome, in float64, for a forward/step/fit workload."""
    Ws = [np.asarray(W, np.float64) for W in weights]
    bs = [np.asarray(b, np.float64) for b in biases]
    X64, Y64 = np.asarray(X, np.float64), np.asarray(Y, np.float64)
    if workload.phase == "forward":
        return reference.predict_proba(Ws, bs, X64, activation, workload.head)
    if workload.phase == "step":
        dWs, dbs = reference.gradients(Ws, bs, X64, Y64, activation)
        reference.sgd_step(Ws, bs, dWs, dbs, workload.lr)
    else:
        reference.train(Ws, bs, X64, Y64, workload.epochs if epochs is None else epochs,
                        protocol.make_optimizer(workload.optimizer, workload.lr), activation,
                        workload.head, batch_size=workload.batch_size)
    return Ws + bs


def compare(workload, actual, want, initial=None):
    """(error, tolerance): the relative max error of an outcome against the reference."""
    tol = TOLERANCES[workload.phase]
    if workload.phase == "forward":
        a, w = np.asarray(actual, np.float64), np.asarray(want, np.float64)
        if a.shape != w.shape:
            return float("inf"), tol
        return float(np.max(np.abs(a - w)) / max(np.max(np.abs(w)), 1e-300)), tol
    init = [np.asarray(p, np.float64) for p in initial]
    got = np.concatenate([(np.asarray(p) - p0).ravel() for p, p0 in zip(actual, init)])
    ref = np.concatenate([(np.asarray(p) - p0).ravel() for p, p0 in zip(want, init)])
    if got.shape != ref.shape:
        return float("inf"), tol
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300)), tol


def compare_outputs(workload, activation, actual, want, X):
    """(error, tolerance) of a trained net against the reference's: max |difference| of
    their head's outputs on X (float64)."""
    L = len(actual) // 2
    X64 = np.asarray(X, np.float64)
    got = [np.asarray(p, np.float64) for p in actual]
    ref = [np.asarray(p, np.float64) for p in want]
    if [p.shape for p in got] != [p.shape for p in ref]:
        return float("inf"), TOLERANCES["fit-adam"]
    p_got = reference.predict_proba(got[:L], got[L:], X64, activation, workload.head)
    p_ref = reference.predict_proba(ref[:L], ref[L:], X64, activation, workload.head)
    return float(np.max(np.abs(p_got - p_ref))), TOLERANCES["fit-adam"]


def check(impl, workload, activation, weights, biases, X, Y, runner=None):
    """Run one outcome of ``impl`` from fresh weights and compare it with the reference:
    returns {"error", "tolerance", "ok"}. ``runner`` (forward/step) is reused when given;
    fits are checked on a runner of CHECK_EPOCHS epochs; the article protocol against the
    article's published numbers."""
    if workload.phase == "article":
        runner = runner or impl.build(workload, activation, weights, biases, X, Y)
        runner.run()
        err = article_error(runner.result())
        tol = TOLERANCES["article"]
        return {"error": err, "tolerance": tol, "ok": bool(err <= tol)}
    epochs = wl.CHECK_EPOCHS if workload.phase == "fit" else None
    if runner is None or workload.phase == "fit":
        runner = impl.build(workload, activation, weights, biases, X, Y, epochs=epochs)
    runner.reset()
    runner.run()
    want = expected(workload, activation, weights, biases, X, Y, epochs)
    if workload.phase == "fit" and workload.optimizer == "adam":
        err, tol = compare_outputs(workload, activation, runner.result(), want, X)
    else:
        err, tol = compare(workload, runner.result(), want, list(weights) + list(biases))
    runner.reset()
    return {"error": err, "tolerance": tol, "ok": bool(err <= tol)}


def article_error(outcome):
    """Largest miss of an article-protocol outcome ({activation: {"loss_history",
    "test_accuracy"}}) against the article's final losses and test accuracies
    (``fastgeo.article.protocol.ARTICLE``), in units of the last reported digit's
    half-width (<= 1: reproduced to 4 decimals and the accuracy exactly)."""
    err = 0.0
    for activation in protocol.ACTIVATIONS:
        want = protocol.ARTICLE[activation]
        got = outcome[activation]
        err = max(err, abs(float(got["loss_history"][-1]) - want["final_loss"]) / 5e-5,
                  abs(got["test_accuracy"] - want["test_accuracy"]) / 1e-9)
    return err
