"""JAX peer (CPU): the same MLP as bench/reference/mlp_numpy.py (float32, inverted dropout,
cross-entropy + reg_lambda/(2m)|W|^2, momentum SGD), with a whole epoch of full batches in
one jit-compiled lax.scan, the last partial batch in one jitted step and the validation pass
in one jitted call. Epoch 1 includes compilation (the harness skips it)."""

import time

import numpy as np

from common import blas_info, data, emit, parser, predict_timings

BATCH = 64
DROPOUT, REG, MOMENTUM, LR0, DECAY = 0.5, 0.01, 0.9, 0.03, 0.05


def main():
    p = parser(__doc__)
    p.add_argument("--prng", default="threefry2x32", help="jax_default_prng_impl")
    args = p.parse_args()
    import jax
    import jax.numpy as jnp
    from jax import lax

    jax.config.update("jax_default_prng_impl", args.prng)
    X, y, Xv, yv, Xt, yt = data(args)
    emit(event="info", jax=jax.__version__, jaxlib=getattr(jax.lib, "__version__", None)
         or jax.__version__, devices=[str(d) for d in jax.devices()], prng=args.prng,
         blas=blas_info())

    def predict_logits(params, x):
        w1, b1, w2, b2 = params
        return jnp.maximum(x @ w1 + b1, 0) @ w2 + b2

    def loss_fn(params, x, yb, key):
        w1, b1, w2, b2 = params
        a1 = jnp.maximum(x @ w1 + b1, 0)
        keep = jax.random.bernoulli(key, 1.0 - DROPOUT, a1.shape)
        a1 = jnp.where(keep, a1 * (1.0 / (1.0 - DROPOUT)), 0.0)
        z2 = a1 @ w2 + b2
        m = x.shape[0]
        ce = jnp.mean(jax.nn.logsumexp(z2, axis=1) - jnp.take_along_axis(
            z2, yb[:, None], axis=1)[:, 0])
        return ce + REG / (2 * m) * (jnp.sum(w1 * w1) + jnp.sum(w2 * w2))

    grad_fn = jax.value_and_grad(loss_fn)

    def step(params, vel, Xd, Yd, idx, key, lr):
        loss, g = grad_fn(params, Xd[idx], Yd[idx], key)
        vel = tuple(MOMENTUM * v - lr * gi for v, gi in zip(vel, g))
        params = tuple(w + v for w, v in zip(params, vel))
        return params, vel, loss

    @jax.jit
    def epoch_fn(params, vel, Xd, Yd, batches, keys, lr):
        def body(carry, xs):
            params, vel = carry
            idx, key = xs
            params, vel, loss = step(params, vel, Xd, Yd, idx, key, lr)
            return (params, vel), loss
        (params, vel), losses = lax.scan(body, (params, vel), (batches, keys))
        return params, vel, losses.sum()

    step_fn = jax.jit(step)

    @jax.jit
    def val_fn(params, Xd, Yd):
        z = predict_logits(params, Xd)
        ce = jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(
            z, Yd[:, None], axis=1)[:, 0])
        return ce, jnp.mean(jnp.argmax(z, axis=1) == Yd)

    rng = np.random.default_rng(args.seed)
    h = args.hidden
    params = (jnp.asarray(rng.standard_normal((784, h), dtype=np.float32)
                          * np.float32(np.sqrt(2 / 784))),
              jnp.zeros((h,), jnp.float32),
              jnp.asarray(rng.standard_normal((h, 10), dtype=np.float32)
                          * np.float32(np.sqrt(2 / h))),
              jnp.zeros((10,), jnp.float32))
    vel = tuple(jnp.zeros_like(w) for w in params)
    Xd, Yd = jnp.asarray(X), jnp.asarray(y.astype(np.int32))
    Xvd, Yvd = jnp.asarray(Xv), jnp.asarray(yv.astype(np.int32))
    n = len(y)
    full = n // BATCH
    key = jax.random.key(args.seed)
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        lr = np.float32(LR0 / (1 + DECAY * epoch))
        order = rng.permutation(n).astype(np.int32)
        key, k_epoch, k_rest = jax.random.split(key, 3)
        keys = jax.random.split(k_epoch, full)
        batches = jnp.asarray(order[:full * BATCH].reshape(full, BATCH))
        params, vel, loss_sum = epoch_fn(params, vel, Xd, Yd, batches, keys, lr)
        if n > full * BATCH:
            params, vel, _ = step_fn(params, vel, Xd, Yd, jnp.asarray(order[full * BATCH:]),
                                     k_rest, lr)
        val_loss, val_acc = val_fn(params, Xvd, Yvd)
        val_loss, val_acc = float(val_loss), float(val_acc)  # waits for the results
        seconds = time.perf_counter() - t0
        emit(event="epoch", epoch=epoch + 1, seconds=seconds, lr=float(lr),
             train_loss=float(loss_sum) / full, val_loss=val_loss, val_accuracy=val_acc)

    pf = jax.jit(lambda p, x: jax.nn.softmax(predict_logits(p, x), axis=1))
    x1, Xtd = jnp.asarray(Xt[:1]), jnp.asarray(Xt)
    emit(event="predict", dtype=str(params[0].dtype),
         **predict_timings(lambda x: pf(params, x).block_until_ready(), x1, Xtd, yt, args))


if __name__ == "__main__":
    main()
