"""The peers of `bench/tune`: hyperopt's TPE and Optuna's TPE with its successive-halving
pruner, each driving the NumPy reference MLP (bench/reference/mlp_numpy.py) on MNIST.

    python tune_peers.py hyperopt|optuna --data DIR --budget SECONDS [--seed N] [--epochs E]

Prints one JSON object per line on stdout, flushed at once, so the harness can timestamp it:
``{"event": "ready"}`` when MNIST is loaded, then ``{"event": "trial", "trial": k, "state":
"complete"|"pruned", "val_accuracy": a, "epochs": e, "params": {...}}`` for every trial that
ends. A trial's score is the validation accuracy of the weights it keeps (the lowest
validation loss, as pismo keeps), or of its last epoch when it is pruned.

Both search the settings the reference has, over the ranges of `pismo tune`'s default space
(tuning/src/space.rs): hidden size, dropout, L2 strength, initial learning rate,
decay, momentum and batch size. The reference has no augmentation, so those dimensions of
pismo's space have no counterpart here.

- hyperopt: the original project's setup, 8-epoch trials with early-stopping patience 2,
  `tpe.suggest`, trials one after another (each uses every core through OpenBLAS).
- Optuna: `TPESampler` and `SuccessiveHalvingPruner` (asynchronous successive halving, as in
  pismo: first rung 1 epoch, reduction factor 3), 8-epoch trials reporting each epoch's
  validation accuracy, no patience (the pruner stops weak trials).
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from mlp_numpy import MLP, load_mnist, one_hot  # noqa: E402

HIDDEN = [64, 128, 256, 512, 1024]
BATCH = [16, 32, 64, 128, 256]
# (name, low, high, log scale) of the real-valued dimensions, as in pismo's default space.
REALS = [
    ("dropout_rate", 0.0, 0.6, False),
    ("reg_lambda", 1e-4, 1.0, True),
    ("initial_lr", 0.003, 0.3, True),
    ("decay", 0.001, 0.5, True),
    ("momentum", 0.5, 0.98, False),
]


def emit(obj):
    print(json.dumps(obj), flush=True)


class Objective:
    """Trains one reference MLP for a point of the space; MNIST is loaded once."""

    def __init__(self, data_dir, epochs, seed):
        X, y, Xv, yv, _, _ = load_mnist(data_dir, val_size=10000, seed=seed)
        self.X, self.Y, self.Xv, self.Yv = X, one_hot(y), Xv, one_hot(yv)
        self.epochs = epochs
        self.seed = seed
        self.trials = 0

    def train(self, params, patience, on_epoch=None):
        """The kept weights' validation accuracy and the epochs run. `on_epoch` may raise to
        stop the trial (Optuna's pruning); the exception passes through."""
        model = MLP(784, int(params["hidden_size"]), 10,
                    dropout_rate=params["dropout_rate"], reg_lambda=params["reg_lambda"],
                    momentum=params["momentum"], seed=self.seed + self.trials)
        self.trials += 1
        history = model.train(self.X, self.Y, self.Xv, self.Yv, self.epochs,
                              batch_size=int(params["batch_size"]),
                              initial_lr=params["initial_lr"], decay=params["decay"],
                              patience=patience, on_epoch=on_epoch)
        kept = min(history, key=lambda r: r["val_loss"])
        return kept["val_accuracy"], len(history)


def finite(x):
    return x if math.isfinite(x) else 0.0


def run_hyperopt(objective, budget, seed):
    from hyperopt import STATUS_OK, Trials, fmin, hp, tpe

    space = {"hidden_size": hp.choice("hidden_size", HIDDEN),
             "batch_size": hp.choice("batch_size", BATCH)}
    for name, low, high, log in REALS:
        space[name] = (hp.loguniform(name, math.log(low), math.log(high)) if log
                       else hp.uniform(name, low, high))

    def fn(params):
        with np.errstate(all="ignore"):
            acc, epochs = objective.train(params, patience=2)
        acc = finite(acc)
        emit({"event": "trial", "trial": objective.trials - 1, "state": "complete",
              "val_accuracy": acc, "epochs": epochs, "params": params})
        return {"loss": -acc, "status": STATUS_OK}

    fmin(fn, space, algo=tpe.suggest, max_evals=100000, timeout=budget, trials=Trials(),
         rstate=np.random.default_rng(seed), show_progressbar=False)


def run_optuna(objective, budget, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3))

    def fn(trial):
        params = {"hidden_size": trial.suggest_categorical("hidden_size", HIDDEN),
                  "batch_size": trial.suggest_categorical("batch_size", BATCH)}
        for name, low, high, log in REALS:
            params[name] = trial.suggest_float(name, low, high, log=log)
        last = {"acc": 0.0, "epochs": 0}

        def on_epoch(report):
            acc = finite(report["val_accuracy"])
            last["acc"], last["epochs"] = acc, report["epoch"]
            trial.report(acc, report["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned()

        try:
            with np.errstate(all="ignore"):
                acc, epochs = objective.train(params, patience=0, on_epoch=on_epoch)
        except optuna.TrialPruned:
            emit({"event": "trial", "trial": trial.number, "state": "pruned",
                  "val_accuracy": last["acc"], "epochs": last["epochs"], "params": params})
            raise
        acc = finite(acc)
        emit({"event": "trial", "trial": trial.number, "state": "complete",
              "val_accuracy": acc, "epochs": epochs, "params": params})
        return acc

    study.optimize(fn, timeout=budget)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("engine", choices=["hyperopt", "optuna"])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--budget", type=float, required=True, help="seconds")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=8, help="epochs of a full trial")
    args = ap.parse_args()
    start = time.monotonic()
    objective = Objective(args.data, args.epochs, args.seed)
    emit({"event": "ready"})
    # The budget counts from the process's start, loading included, as the harness does.
    left = max(1.0, args.budget - (time.monotonic() - start))
    (run_hyperopt if args.engine == "hyperopt" else run_optuna)(objective, left, args.seed)


if __name__ == "__main__":
    main()
