"""The article's protocol, once: its data, weights, random streams, constants and the
numbers the article reports, and one run of it on ``fastgeo.MLP`` with the article's
metrics.

The protocol is the article's companion notebook, kept exactly, quirks included:

* Data: ``make_moons(n_samples=400, noise=0.18, random_state=42)``; a ``StandardScaler``
  fit on all 400 points *before* the split (the notebook does this; it leaks the test
  set's mean and scale into training, harmlessly here); ``train_test_split(test_size=0.25,
  random_state=42)`` -> 300 train, 100 test.
* Nets: 2-8-8-1, sigmoid output, biases zero. Sigmoid net: ``np.random.seed(42)``, then
  ``randn`` for W1, W2, W3 in that order, each times sqrt(1/fan_in) (the article calls it
  Xavier). ReLU net: ``np.random.seed(42)`` again, the same draws times sqrt(2/fan_in) (He).
* Training: mini-batch SGD, lr 0.05, batch 64 (the last batch of each epoch has 44),
  800 epochs. Each epoch draws ONE ``np.random.permutation(300)`` from the legacy global
  stream, continuing right after the ReLU net's weights, and both nets train on that
  same order. Recorded epoch loss = mean of the mini-batch losses measured before each
  update.

Here the legacy global stream is a private ``np.random.RandomState(seed)`` (the same
Mersenne-Twister stream as ``np.random.seed(seed)``), so the caller's global numpy
random state is left alone.

Two notebook quirks fastgeo does not copy, and why it does not matter here (the literal
transcription in ``fastgeo.article.notebook`` measures both):

* The notebook records the loss as ``-mean(y log(p + 1e-9) + (1 - y) log(1 - p + 1e-9))``;
  fastgeo computes the same BCE stably from the logits. The gradients are the same
  (the notebook's backward pass uses p - y), so the trajectories are identical; only the
  recorded numbers differ, by about 1e-9 on this protocol.
* The notebook clips the sigmoid's input to +-500. That changes nothing unless some
  |z| > 500; the transcription reports the largest |z| it saw (about 20).

Metrics: test accuracy at threshold 0.5; hidden std of layer l = std over ALL entries of
a_l on the test set; signal trace of a point = mean |.| over units of [z1, a1, z2, a2, z3];
the two "far" points are the class-0 training point farthest from (-1.2, -0.3) and the
class-1 training point farthest from (1.2, 0.3).
"""

import itertools
import math

import numpy as np

from .. import activations as registry

#: The protocol, as the notebook has it. ``net_seed`` and ``data_seed`` are what
#: ``--seeds`` and ``--data-seeds`` vary.
PROTOCOL = {
    "n_samples": 400,
    "noise": 0.18,
    "data_seed": 42,  # make_moons random_state and train_test_split random_state
    "test_size": 0.25,
    "scaler": "StandardScaler fit on all 400 points before the split",
    "sizes": [2, 8, 8, 1],
    "init": {"sigmoid": "randn * sqrt(1/fan_in)", "relu": "randn * sqrt(2/fan_in)"},
    "net_seed": 42,  # legacy np.random.seed for the weights and the epoch permutations
    "lr": 0.05,
    "batch_size": 64,
    "epochs": 800,
    "far_point_centres": {"class0": [-1.2, -0.3], "class1": [1.2, 0.3]},
    "loss": "mean BCE from the logits (the notebook: log(p + 1e-9); difference ~1e-9)",
}

#: The article's two nets, in the order the notebook draws their weights.
ACTIVATIONS = ("sigmoid", "relu")
#: Weights are randn * sqrt(gain / fan_in): the article's recipe, per hidden activation
#: (the gains live in the activation registry).
GAINS = {act.name: act.gain for act in registry.ACTIVATIONS.values()}
#: The optimisers ``reproduce --optimizer`` and ``sweep --optimizers`` offer, each with its
#: usual learning rate: the article's plain SGD; SGD with Nesterov momentum 0.9
#: (scikit-learn's default momentum) at the article's rate; Adam at the paper's and
#: scikit-learn's default rate (beta_1 0.9, beta_2 0.999, epsilon 1e-8).
OPTIMIZERS = {"sgd": 0.05, "momentum": 0.05, "adam": 0.001}


def make_optimizer(name, lr=None):
    """A fresh ``fastgeo.optimizers`` object for one of ``OPTIMIZERS`` (lr None: its usual
    rate)."""
    from .. import optimizers

    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    lr = OPTIMIZERS[name] if lr is None else lr
    if name == "adam":
        return optimizers.Adam(lr)
    return optimizers.SGD(lr, momentum=0.9 if name == "momentum" else 0.0)


def parse_optimizers(text, lr=None):
    """"sgd,adam@0.01,momentum" -> [("sgd", 0.05), ("adam", 0.01), ("momentum", 0.05)]:
    name[@rate], the rate defaulting to ``lr`` if given, else the optimiser's usual one."""
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        name, _, rate = item.partition("@")
        make_optimizer(name)  # ValueError naming the choices
        rate = float(rate) if rate else (OPTIMIZERS[name] if lr is None else lr)
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"learning rate of {item!r} must be finite and > 0")
        out.append((name, rate))
    if not out:
        raise ValueError("no optimizers given")
    return out


#: The stages of a signal trace through a 2-8-8-1 net.
TRACE_KEYS = ("z1", "a1", "z2", "a2", "z3")

#: The article's reported values.
ARTICLE = {
    "sigmoid": {"final_loss": 0.2822, "test_accuracy": 0.79, "hidden_std": [0.2593, 0.1950]},
    "relu": {"final_loss": 0.0353, "test_accuracy": 0.96},
    # The summary's "pre-activations 9-20 vs a 0.6 cap": the ReLU net's output logit |z3|
    # at the two far points, against the sigmoid net's a2 there.
    "relu_far_z3": [9, 20],
    "sigmoid_far_a2_cap": 0.6,
}


def n_train():
    """Training rows of the protocol's split (300): train_test_split rounds the test
    share up."""
    return PROTOCOL["n_samples"] - math.ceil(PROTOCOL["test_size"] * PROTOCOL["n_samples"])


def gain(activation):
    """The article recipe's gain for ``activation`` (ValueError naming the known ones)."""
    try:
        return registry.get(activation).gain
    except ValueError:
        raise ValueError(f"the article protocol has no weight gain for activation "
                         f"{activation!r}; known: {sorted(GAINS)}") from None


def load_data(data_seed=42):
    """(X_train, X_test, y_train, y_test) as the notebook makes them; y are int 0/1."""
    from sklearn.datasets import make_moons
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = make_moons(n_samples=PROTOCOL["n_samples"], noise=PROTOCOL["noise"],
                      random_state=data_seed)
    X = StandardScaler().fit_transform(X)  # on all 400 points, before the split
    return train_test_split(X, y, test_size=PROTOCOL["test_size"], random_state=data_seed)


def legacy_weights(rng, sizes, gain):
    """Weights ``rng.randn(fan_in, fan_out) * sqrt(gain / fan_in)`` layer by layer (the
    draws advance rng), zero biases."""
    weights = [rng.randn(fan_in, fan_out) * np.sqrt(gain / fan_in)
               for fan_in, fan_out in itertools.pairwise(sizes)]
    return weights, [np.zeros(fan_out) for fan_out in sizes[1:]]


def protocol_streams(net_seed, sizes, epochs, n, activations=ACTIVATIONS):
    """The notebook's random draws: for each activation, reseed and draw its weights;
    then ``epochs`` permutations of range(n) from the stream continuing after the LAST
    net's weights. Returns ({activation: (weights, biases)}, perms (epochs, n)).

    With no activations the weights of ``sizes`` are drawn and dropped: the permutations
    are the same either way (the gain scales the draws, it does not change how many
    there are); ``fastgeo sweep`` uses that for nets of any depth."""
    params = {}
    rng = None
    for act in activations:
        rng = np.random.RandomState(net_seed)  # == np.random.seed(net_seed)
        params[act] = legacy_weights(rng, sizes, gain(act))
    if rng is None:
        rng = np.random.RandomState(net_seed)
        legacy_weights(rng, sizes, 1.0)
    perms = np.empty((epochs, n), dtype=np.int64)
    for e in range(epochs):
        perms[e] = rng.permutation(n)
    return params, perms


def far_points(X, y):
    """Indices of the class-0 point farthest from (-1.2, -0.3) and the class-1 point
    farthest from (1.2, 0.3)."""
    out = {}
    for c, key in ((0, "class0"), (1, "class1")):
        idx = np.flatnonzero(y == c)
        centre = np.array(PROTOCOL["far_point_centres"][key])
        out[key] = int(idx[np.argmax(np.linalg.norm(X[idx] - centre, axis=1))])
    return out


def signal_trace(net, x):
    """mean |.| over units of [z1, a1, z2, a2, ..., z_L] for one point x."""
    zs, acts = net.forward_trace(np.asarray(x, dtype=float).reshape(1, -1))
    trace = []
    for z, a in zip(zs[:-1], acts[1:-1]):
        trace += [float(np.abs(z).mean()), float(np.abs(a).mean())]
    return trace + [float(np.abs(zs[-1]).mean())]


def train_nets(X_train, y_train, net_seed=42, epochs=None, backend="numba",
               activations=ACTIVATIONS, optimizer="sgd", lr=None):
    """Draw the protocol's weights and epoch orders for ``net_seed`` and train one
    ``fastgeo.MLP`` per activation on them (``optimizer``: one of ``OPTIMIZERS``, the
    article's plain SGD by default; lr None: the protocol's 0.05 for SGD, the usual rate
    otherwise). Returns ({activation: trained MLP}, {activation: epoch losses (array)})."""
    from ..mlp import MLP

    epochs = PROTOCOL["epochs"] if epochs is None else epochs
    params, perms = protocol_streams(net_seed, PROTOCOL["sizes"], epochs, X_train.shape[0],
                                     activations)
    nets, histories = {}, {}
    for act in activations:
        net = MLP.from_params(*params[act], activation=act, backend=backend)
        histories[act] = net.fit(X_train, y_train, epochs,
                                 optimizer=make_optimizer(optimizer, lr),
                                 batch_size=PROTOCOL["batch_size"], permutations=perms)
        nets[act] = net
    return nets, histories


def run_protocol(net_seed=42, data_seed=42, epochs=None, backend="numba",
                 activations=ACTIVATIONS, geometry=True, optimizer="sgd", lr=None):
    """Run the protocol once. Returns (results, nets, data): results is the JSON-ready
    dict {activation: {...}, "protocol": {...}}, nets {activation: trained MLP}, data the
    (X_train, X_test, y_train, y_test) tuple."""
    from .. import geometry as geo

    epochs = PROTOCOL["epochs"] if epochs is None else epochs
    data = Xtr, Xte, ytr, yte = load_data(data_seed)
    far = far_points(Xtr, ytr)
    nets, histories = train_nets(Xtr, ytr, net_seed, epochs, backend, activations, optimizer,
                                 lr)
    results = {}
    for act in activations:
        net, history = nets[act], histories[act]
        _, acts = net.forward_trace(Xte)
        res = {
            "final_loss": float(history[-1]) if epochs else None,
            "test_accuracy": net.score(Xte, yte),
            "hidden_std": [float(a.std()) for a in acts[1:-1]],
            "signal_trace": {k: signal_trace(net, Xtr[i]) for k, i in far.items()},
            "loss_history": [float(v) for v in history],
        }
        if geometry:
            res["geometry"] = geo.diagnose(net, Xtr, ytr, Xte, yte)
        results[act] = res
    results["protocol"] = dict(PROTOCOL, epochs=epochs, net_seed=net_seed, data_seed=data_seed,
                               backend=backend, optimizer=optimizer,
                               lr=make_optimizer(optimizer, lr).learning_rate_init,
                               far_points=far,
                               far_point_coordinates={k: Xtr[i].tolist() for k, i in far.items()})
    return results, nets, data
