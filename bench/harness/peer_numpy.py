"""NumPy peer: trains bench/reference/mlp_numpy.py (the original design, float32) and times
its epochs and its predict_proba. One process per measurement; JSON lines on stdout."""

import time

import numpy as np

from common import blas_info, data, emit, mlp_numpy, one_hot, parser, predict_timings


def main():
    args = parser(__doc__).parse_args()
    t0 = time.perf_counter()
    X, y, Xv, yv, Xt, yt = data(args)
    emit(event="loaded", seconds=time.perf_counter() - t0)
    model = mlp_numpy.MLP(784, args.hidden, 10, dropout_rate=0.5, reg_lambda=0.01,
                          learning_rate=0.03, momentum=0.9, seed=args.seed)
    emit(event="info", numpy=np.__version__, blas=blas_info(),
         dtypes=sorted({str(a.dtype) for a in (X, model.W1, model.b1, model.W2, model.b2)}))
    model.train(X, one_hot(y), Xv, one_hot(yv), args.epochs, batch_size=64,
                initial_lr=0.03, decay=0.05, patience=0,
                on_epoch=lambda r: emit(event="epoch", **r))
    dtypes = sorted({str(a.dtype) for a in (model.W1, model.b1, model.W2, model.b2,
                                            model.vW1, model.A1, model.A2)})
    emit(event="predict", dtypes_after=dtypes,
         **predict_timings(model.predict_proba, Xt[:1], Xt, yt, args))


if __name__ == "__main__":
    main()
