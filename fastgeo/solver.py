"""scikit-learn's stochastic solver loop (``BaseMultilayerPerceptron._fit_stochastic``):
epochs of mini-batches, the optimiser, the stopping rule, and the state scikit-learn
keeps between calls (``warm_start``, ``partial_fit``) under its attribute names.

Per epoch: batches of ``batch_size`` in the epoch's order; ``loss_curve_`` gets the
batch losses weighted by batch size (sum of loss x size / n, scikit-learn's definition,
unlike ``MLP.fit``'s plain mean of the batch losses); ``t_`` grows by n; the stopping
counter compares the loss (or a validation score) with the best so far minus ``tol``;
the optimiser's schedule sees ``t_``; when the counter exceeds ``n_iter_no_change`` the
optimiser decides: "adaptive" SGD divides its rate by 5 and carries on, anything else
stops.

The state lives on any object (``start``, ``record`` and ``end_epoch`` set and read its
attributes): the scikit-learn estimators keep it on themselves, ``StochasticSolver``
holds it for the NumPy reference loop.
"""

import numpy as np

from . import reference


def start(state, early_stopping):
    """The attributes of a fresh fit (scikit-learn's ``_initialize``)."""
    state.n_iter_ = 0
    state.t_ = 0
    state.loss_curve_ = []
    state._no_improvement_count = 0
    state._best_params = None
    if early_stopping:
        state.validation_scores_ = []
        state.best_validation_score_ = -np.inf
        state.best_loss_ = None
    else:
        state.best_loss_ = np.inf
        state.validation_scores_ = None
        state.best_validation_score_ = None


def record(state, loss, n):
    """Book an epoch of n samples whose loss, as scikit-learn reports it, was ``loss``."""
    if not np.isfinite(loss):
        raise FloatingPointError(
            f"the training loss became non-finite in epoch {state.n_iter_ + 1}")
    state.n_iter_ += 1
    state.t_ += n
    state.loss_curve_.append(float(loss))


def end_epoch(state, optimizer, tol, n_iter_no_change, params, validation_score=None):
    """The stopping rule after an epoch (``validation_score`` with early stopping: the
    parameters of the best one are kept in ``_best_params``); returns True when training
    should stop."""
    if validation_score is not None:
        state.validation_scores_.append(validation_score)
        if validation_score < state.best_validation_score_ + tol:
            state._no_improvement_count += 1
        else:
            state._no_improvement_count = 0
        if validation_score > state.best_validation_score_:
            state.best_validation_score_ = validation_score
            state._best_params = [p.copy() for p in params]
    else:
        loss = state.loss_curve_[-1]
        if loss > state.best_loss_ - tol:
            state._no_improvement_count += 1
        else:
            state._no_improvement_count = 0
        state.best_loss_ = min(state.best_loss_, loss)
    optimizer.epoch_ends(state.t_)
    if state._no_improvement_count > n_iter_no_change:
        if optimizer.plateau():
            return True
        state._no_improvement_count = 0
    return False


class StochasticSolver:
    """The loop on the NumPy reference (``fastgeo.reference``): the oracle tests' fastgeo
    side. ``optimizer`` is a ``fastgeo.optimizers`` object."""

    def __init__(self, optimizer, tol=1e-4, n_iter_no_change=10):
        self.optimizer = optimizer
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        start(self, early_stopping=False)

    def epoch(self, weights, biases, X, Y, order, batch_size, activation, head="sigmoid",
              alpha=0.0, sample_weight=None):
        """Train one epoch; returns its loss as scikit-learn reports it."""
        self.optimizer.start([W.shape[0] for W in weights] + [weights[-1].shape[1]],
                             weights[0].dtype)
        losses, penalties, sizes = reference.train_epoch(
            weights, biases, X, Y, order, batch_size, self.optimizer.step, activation, head,
            alpha, sample_weight)
        loss = reference.reported_loss(head, losses, penalties, sizes, Y.shape[1])
        self.record(loss, X.shape[0])
        return loss

    def record(self, loss, n):
        record(self, loss, n)

    def end_epoch(self, params, validation_score=None):
        return end_epoch(self, self.optimizer, self.tol, self.n_iter_no_change, params,
                         validation_score)

    def fit(self, weights, biases, X, Y, max_iter, batch_size, activation, head="sigmoid",
            alpha=0.0, sample_weight=None):
        """Up to max_iter epochs over 0..n-1; returns True if the stopping rule ended
        training."""
        self.n_iter_ = 0
        for _ in range(max_iter):
            self.epoch(weights, biases, X, Y, np.arange(X.shape[0]), batch_size, activation,
                       head, alpha, sample_weight)
            if self.end_epoch(weights + biases):
                return True
        return False
