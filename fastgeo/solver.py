"""scikit-learn's stochastic solver loop (``BaseMultilayerPerceptron._fit_stochastic``) on
fastgeo's reference maths: epochs of mini-batches, the optimiser, the stopping rule and
the state scikit-learn keeps between calls (``warm_start``, ``partial_fit``).

Per epoch: batches of ``batch_size`` in the epoch's order; ``loss_curve_`` gets the
batch losses weighted by batch size (sum of loss x size / n, scikit-learn's definition,
unlike ``MLP.fit``'s plain mean of the batch losses); ``t_`` grows by n; the stopping
counter compares the loss (or a validation score) with the best so far minus ``tol``;
the optimiser's schedule sees ``t_``; when the counter exceeds ``n_iter_no_change`` the
optimiser decides: "adaptive" SGD divides its rate by 5 and carries on, anything else
stops.
"""

import numpy as np

from . import heads, reference


class StochasticSolver:
    """Training state across epochs and calls. ``optimizer`` is a ``fastgeo.optimizers``
    object over ``weights + biases`` (lists of arrays updated in place)."""

    def __init__(self, optimizer, tol=1e-4, n_iter_no_change=10, early_stopping=False):
        self.optimizer = optimizer
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.early_stopping = early_stopping
        self.t_ = 0
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.validation_scores_ = [] if early_stopping else None
        self.best_loss_ = None if early_stopping else np.inf
        self.best_validation_score_ = -np.inf if early_stopping else None
        self.no_improvement_count = 0
        self.best_params = None

    def epoch(self, weights, biases, X, Y, order, batch_size, activation, head="sigmoid",
              alpha=0.0, sample_weight=None):
        """Train one epoch; returns its loss as scikit-learn reports it."""
        self.optimizer.start([W.shape[0] for W in weights] + [weights[-1].shape[1]],
                             weights[0].dtype)
        losses, penalties, sizes = reference.train_epoch(
            weights, biases, X, Y, order, batch_size, self.optimizer.step, activation, head,
            alpha, sample_weight)
        reported = heads.get(head).sklearn_loss(np.asarray(losses), Y.shape[1]) + penalties
        loss = np.dot(reported, sizes) / X.shape[0]
        return self.record(loss, X.shape[0])

    def record(self, loss, n):
        """Book an epoch of n samples whose loss (as scikit-learn reports it) was ``loss``
        (trained elsewhere: ``MLP._fit``, the compiled fit)."""
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"the training loss became non-finite in epoch {self.n_iter_ + 1}")
        self.n_iter_ += 1
        self.t_ += n
        self.loss_curve_.append(float(loss))
        return loss

    def end_epoch(self, params, validation_score=None):
        """The stopping rule after an epoch (``validation_score`` with early stopping);
        returns True when training should stop."""
        if self.early_stopping:
            self.validation_scores_.append(validation_score)
            if validation_score < self.best_validation_score_ + self.tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            if validation_score > self.best_validation_score_:
                self.best_validation_score_ = validation_score
                self.best_params = [p.copy() for p in params]
        else:
            loss = self.loss_curve_[-1]
            if loss > self.best_loss_ - self.tol:
                self.no_improvement_count += 1
            else:
                self.no_improvement_count = 0
            self.best_loss_ = min(self.best_loss_, loss)
        self.optimizer.epoch_ends(self.t_)
        if self.no_improvement_count > self.n_iter_no_change:
            if self.optimizer.plateau():
                return True
            self.no_improvement_count = 0
        return False

    def fit(self, weights, biases, X, Y, max_iter, batch_size, activation, head="sigmoid",
            alpha=0.0, sample_weight=None, orders=None):
        """Up to max_iter epochs (``orders(epoch)`` gives each epoch's sample order, None
        = 0..n-1); returns True if the stopping rule ended training."""
        self.n_iter_ = 0
        for epoch in range(max_iter):
            order = np.arange(X.shape[0]) if orders is None else orders(epoch)
            self.epoch(weights, biases, X, Y, order, batch_size, activation, head, alpha,
                       sample_weight)
            if self.end_epoch(weights + biases):
                return True
        return False
