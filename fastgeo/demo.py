"""``fastgeo demo``: train sigmoid and ReLU nets on two-moons with both backends and
compare loss, accuracy and time."""

import time

from .mlp import MLP


def add_parser(sub):
    p = sub.add_parser("demo", help="train sigmoid and ReLU 2-8-8-1 nets on two-moons, "
                                    "numba vs numpy")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--lr", type=float, default=0.5)
    p.set_defaults(func=run)


def run(args):
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=args.samples, noise=0.2, random_state=0)
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    print(f"two-moons: {args.samples} samples, 2-8-8-1, {args.epochs} full-batch epochs, "
          f"lr {args.lr}")
    t = time.perf_counter()
    MLP((2, 8, 8, 1), "sigmoid").fit(X, y, 1, args.lr)
    MLP((2, 8, 8, 1), "relu").fit(X, y, 1, args.lr)
    print(f"first call (compile or load from the on-disk cache): {time.perf_counter() - t:.2f} s")
    print(f"{'activation':<10} {'backend':<7} {'final loss':>10} {'accuracy':>9} {'fit time':>9}")
    for activation in ("sigmoid", "relu"):
        times = {}
        for backend in ("numpy", "numba"):
            net = MLP((2, 8, 8, 1), activation, seed=0, backend=backend)
            t = time.perf_counter()
            losses = net.fit(X, y, args.epochs, args.lr)
            times[backend] = time.perf_counter() - t
            print(f"{activation:<10} {backend:<7} {losses[-1]:>10.4f} {net.score(X, y):>9.3f} "
                  f"{times[backend]:>8.3f}s")
        print(f"{'':<10} numba is {times['numpy'] / times['numba']:.1f}x faster than numpy")
    return 0
