"""The original project's MLP (src/app/ds/mlp.py), rewritten in float32 NumPy as a peer.

The original README (Polish, section "MLP Implementacja") describes a class ``MLP`` with
``__init__(input_size, hidden_size, output_size, dropout_rate=0.5, reg_lambda=0.01,
learning_rate=0.1)``, He initialisation, zero biases, ``relu``, ``softmax``, ``forward`` with
dropout on the hidden layer, ``compute_loss`` (cross-entropy + L2), ``backward`` computing
dZ2, dW2, db2, dZ1, dW1, db1 and updating with momentum (beta = 0.9), ``train`` (mini-batch
gradient descent with learning-rate decay and early stopping), ``predict_proba`` and
``predict``. This file is that class. Where the description is silent or ambiguous it follows
pismo's definitions (docs/ARCHITECTURE.md), so that both programs do the same work:

- dropout is inverted (kept units are scaled by 1/(1 - dropout_rate)) and only in training;
- loss of a batch of m samples: mean cross-entropy + reg_lambda/(2m) * (|W1|^2 + |W2|^2),
  biases not penalised; the L2 gradient is (reg_lambda/m) * W;
- learning rate of epoch e (from 0): initial_lr / (1 + decay * e);
- momentum: v = beta * v - lr * g; w += v (weights and biases);
- after each epoch the validation loss is measured; the weights with the lowest validation
  loss are kept, and training stops after ``patience`` epochs without improvement
  (patience = 0: never);
- the training loss of an epoch is the mean batch cross-entropy plus the L2 term of the
  weights at the end of the epoch, computed once per epoch (as pismo does), not per batch.

Everything is float32: inputs, weights, velocities, dropout masks (drawn in float32) and all
intermediate arrays. Products go to NumPy's BLAS (OpenBLAS in the wheels), on all cores.

Run alone, it trains on MNIST like the original's ``python src/app/ds/mlp.py``:
``python bench/reference/mlp_numpy.py [DATA_DIR] [--epochs N] [--hidden-size H]``.
"""

import gzip
import os
import sys
import time

import numpy as np

F32 = np.float32


class MLP:
    """784 -> hidden_size ReLU -> output_size softmax, trained by momentum SGD."""

    def __init__(self, input_size, hidden_size, output_size, dropout_rate=0.5,
                 reg_lambda=0.01, learning_rate=0.1, momentum=0.9, seed=None):
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.dropout_rate = F32(dropout_rate)
        self.reg_lambda = F32(reg_lambda)
        self.learning_rate = F32(learning_rate)
        self.beta = F32(momentum)
        self.rng = np.random.default_rng(seed)
        # He initialisation: N(0, 2 / fan_in); zero biases.
        self.W1 = (self.rng.standard_normal((input_size, hidden_size), dtype=F32)
                   * F32(np.sqrt(2.0 / input_size)))
        self.b1 = np.zeros((1, hidden_size), dtype=F32)
        self.W2 = (self.rng.standard_normal((hidden_size, output_size), dtype=F32)
                   * F32(np.sqrt(2.0 / hidden_size)))
        self.b2 = np.zeros((1, output_size), dtype=F32)
        # Momentum buffers.
        self.vW1 = np.zeros_like(self.W1)
        self.vb1 = np.zeros_like(self.b1)
        self.vW2 = np.zeros_like(self.W2)
        self.vb2 = np.zeros_like(self.b2)
        self.history = []

    # -- activations --------------------------------------------------------------------
    @staticmethod
    def relu(Z):
        return np.maximum(Z, F32(0))

    @staticmethod
    def softmax(Z):
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    # -- forward / loss / backward --------------------------------------------------------
    def forward(self, X, training=True):
        # X: (m, 784) -> Z1, A1: (m, H) -> Z2, A2: (m, 10)
        self.X = X
        self.Z1 = X @ self.W1 + self.b1
        self.A1 = self.relu(self.Z1)
        if training and self.dropout_rate > 0:
            keep = F32(1) - self.dropout_rate
            self.mask = (self.rng.random(self.A1.shape, dtype=F32) < keep) / keep
            self.A1 = self.A1 * self.mask
        else:
            self.mask = None
        self.Z2 = self.A1 @ self.W2 + self.b2
        self.A2 = self.softmax(self.Z2)
        return self.A2

    def cross_entropy(self, Y, A2):
        """Mean cross-entropy of one-hot Y against probabilities A2."""
        m = Y.shape[0]
        p = np.sum(A2 * Y, axis=1)
        return float(-np.sum(np.log(np.maximum(p, F32(1e-12)))) / m)

    def l2_term(self, m):
        return float(self.reg_lambda / (2 * m)
                     * (np.sum(self.W1 * self.W1) + np.sum(self.W2 * self.W2)))

    def compute_loss(self, Y, A2):
        """Cross-entropy + L2 for a batch of m = len(Y) samples."""
        return self.cross_entropy(Y, A2) + self.l2_term(Y.shape[0])

    def backward(self, Y, lr):
        m = Y.shape[0]
        l2 = self.reg_lambda / F32(m)
        dZ2 = (self.A2 - Y) / F32(m)                       # (m, 10)
        dW2 = self.A1.T @ dZ2 + l2 * self.W2               # (H, 10)
        db2 = dZ2.sum(axis=0, keepdims=True)               # (1, 10)
        dA1 = dZ2 @ self.W2.T                              # (m, H)
        dZ1 = dA1 * (self.Z1 > 0)                          # relu'
        if self.mask is not None:
            dZ1 = dZ1 * self.mask                          # the same dropout mask
        dW1 = self.X.T @ dZ1 + l2 * self.W1                # (784, H)
        db1 = dZ1.sum(axis=0, keepdims=True)               # (1, H)
        # The input gradient dX = dZ1 @ W1.T is not needed and not computed.
        for w, v, g in ((self.W1, self.vW1, dW1), (self.b1, self.vb1, db1),
                        (self.W2, self.vW2, dW2), (self.b2, self.vb2, db2)):
            v *= self.beta
            v -= lr * g
            w += v

    # -- training ---------------------------------------------------------------------------
    def train(self, X_train, Y_train, X_val, Y_val, epochs, batch_size=64, initial_lr=None,
              decay=0.05, patience=5, on_epoch=None):
        """Mini-batch momentum SGD. Y_* are one-hot float32. Returns self.history, one dict
        per epoch with its wall time in ``seconds`` (training pass + validation, as pismo's
        epoch time)."""
        initial_lr = self.learning_rate if initial_lr is None else F32(initial_lr)
        n = X_train.shape[0]
        best_val = np.inf
        best = None
        waited = 0
        for epoch in range(epochs):
            t0 = time.perf_counter()
            lr = F32(initial_lr / (1 + decay * epoch))
            order = self.rng.permutation(n)
            loss_sum, correct = 0.0, 0
            for lo in range(0, n, batch_size):
                idx = order[lo:lo + batch_size]
                X, Y = X_train[idx], Y_train[idx]
                A2 = self.forward(X, training=True)
                loss_sum += self.cross_entropy(Y, A2) * len(idx)
                correct += int(np.sum(A2.argmax(axis=1) == Y.argmax(axis=1)))
                self.backward(Y, lr)
            train_loss = loss_sum / n + self.l2_term(batch_size)
            A2v = self.predict_proba(X_val)
            val_loss = self.cross_entropy(Y_val, A2v)
            val_acc = float(np.mean(A2v.argmax(axis=1) == Y_val.argmax(axis=1)))
            improved = val_loss < best_val
            if improved:
                best_val = val_loss
                best = [a.copy() for a in (self.W1, self.b1, self.W2, self.b2)]
                waited = 0
            else:
                waited += 1
            seconds = time.perf_counter() - t0
            report = {"epoch": epoch + 1, "lr": float(lr), "train_loss": train_loss,
                      "train_accuracy": correct / n, "val_loss": val_loss,
                      "val_accuracy": val_acc, "seconds": seconds, "improved": improved}
            self.history.append(report)
            if on_epoch is not None:
                on_epoch(report)
            if patience and waited >= patience:
                break
        if best is not None:
            self.W1, self.b1, self.W2, self.b2 = best
        return self.history

    # -- inference --------------------------------------------------------------------------
    def predict_proba(self, X):
        A1 = self.relu(X @ self.W1 + self.b1)
        return self.softmax(A1 @ self.W2 + self.b2)

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


# -- MNIST ----------------------------------------------------------------------------------
def read_idx(path):
    """A raw or gzipped IDX file as a uint8 array of its shape."""
    for p in (path, path + ".gz"):
        if os.path.exists(p):
            with open(p, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            ndim = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
            return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)
    raise FileNotFoundError(f"{path}[.gz] not found (scripts/fetch-mnist downloads MNIST)")


def load_mnist(data_dir, val_size=10000, seed=42):
    """(X_train, y_train, X_val, y_val, X_test, y_test): float32 images in 0..1, shape
    (n, 784), uint8 labels; the validation split is a seeded random subset of the 60000
    training images, as in pismo."""
    X = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte")).reshape(-1, 784)
    y = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte"))
    Xt = read_idx(os.path.join(data_dir, "t10k-images-idx3-ubyte")).reshape(-1, 784)
    yt = read_idx(os.path.join(data_dir, "t10k-labels-idx1-ubyte"))
    order = np.random.default_rng(seed).permutation(len(y))
    val, train = order[:val_size], order[val_size:]
    to_f32 = lambda a: a.astype(F32) / F32(255)  # noqa: E731
    return to_f32(X[train]), y[train], to_f32(X[val]), y[val], to_f32(Xt), yt


def one_hot(y, classes=10):
    Y = np.zeros((len(y), classes), dtype=F32)
    Y[np.arange(len(y)), y] = 1
    return Y


def main(argv):
    data_dir, epochs, hidden = "data/mnist", 20, 128
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--epochs":
            epochs = int(args.pop(0))
        elif a == "--hidden-size":
            hidden = int(args.pop(0))
        else:
            data_dir = a
    X, y, Xv, yv, Xt, yt = load_mnist(data_dir)
    model = MLP(784, hidden, 10, seed=42)
    model.train(X, one_hot(y), Xv, one_hot(yv), epochs, initial_lr=0.03, decay=0.05,
                patience=5, on_epoch=lambda r: print(
                    f"epoch {r['epoch']}  lr {r['lr']:.4f}  loss {r['train_loss']:.4f}  "
                    f"val loss {r['val_loss']:.4f} acc {100 * r['val_accuracy']:.2f}%  "
                    f"{r['seconds']:.2f}s", flush=True))
    print(f"test accuracy {100 * np.mean(model.predict(Xt) == yt):.2f}%")


if __name__ == "__main__":
    main(sys.argv[1:])
