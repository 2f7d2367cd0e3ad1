"""scikit-learn peer: MLPClassifier (sgd, momentum 0.9, batch 64, same shape), one epoch
per fit() with warm_start, float32 input. Times each fit() call and predict_proba."""

import time
import warnings

import numpy as np

from common import blas_info, data, emit, parser, predict_timings


def main():
    args = parser(__doc__).parse_args()
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    X, y, Xv, yv, Xt, yt = data(args)
    clf = MLPClassifier(hidden_layer_sizes=(args.hidden,), activation="relu", solver="sgd",
                        momentum=0.9, nesterovs_momentum=False, batch_size=64,
                        learning_rate="constant", learning_rate_init=0.03, alpha=0.01,
                        max_iter=1, warm_start=True, shuffle=True, random_state=args.seed)
    emit(event="info", sklearn=sklearn.__version__, numpy=np.__version__, blas=blas_info(),
         input_dtype=str(X.dtype))
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - t0
        # Outside the timed region: sklearn's epoch has no validation pass of its own.
        val_acc = float(np.mean(clf.predict(Xv) == yv))
        emit(event="epoch", epoch=epoch, seconds=seconds, train_loss=float(clf.loss_),
             val_accuracy=val_acc)
    emit(event="predict", coef_dtype=str(clf.coefs_[0].dtype),
         **predict_timings(clf.predict_proba, Xt[:1], Xt, yt, args))


if __name__ == "__main__":
    main()
