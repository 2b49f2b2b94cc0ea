"""``Layout``: where a net's parameters live in its one flat buffer.

``params`` holds, layer by layer, W_l row-major (fan_in x fan_out) then b_l (fan_out)
(the layout ``fastgeo.kernels`` reads, see its module docstring). This is the one place
the Python side computes those offsets: ``MLP`` (its ``weights``/``biases`` views, its
``macs_per_sample``), the backends (gradients and traces split per layer) and
``fastgeo.bench.workloads`` read them from here. (The kernels' own scratch layouts,
``kernels.packed_size`` and ``kernels.tile_rows``, are internal to the kernels.)
"""

from itertools import pairwise


class Layout:
    """The parameter layout of a net of ``sizes`` (immutable).

    ``offsets[l]`` = (start of W_l, start of b_l, end of b_l) in the flat buffer;
    ``shapes[l]`` = (fan_in, fan_out); ``unit_bounds`` = the column bounds of each layer's
    units when all layers' units sit side by side (a forward trace); ``n_params``,
    ``n_units`` (units of layers 1..L) and ``macs_per_sample`` (multiply-adds of one
    sample's forward pass).
    """

    __slots__ = (
        "macs_per_sample",
        "n_params",
        "n_units",
        "offsets",
        "shapes",
        "sizes",
        "unit_bounds",
    )

    def __init__(self, sizes):
        sizes = tuple(int(s) for s in sizes)
        shapes = tuple(pairwise(sizes))
        offsets, p = [], 0
        for fan_in, fan_out in shapes:
            offsets.append((p, p + fan_in * fan_out, p + fan_in * fan_out + fan_out))
            p = offsets[-1][2]
        bounds = [0]
        for width in sizes[1:]:
            bounds.append(bounds[-1] + width)
        values = {"sizes": sizes, "shapes": shapes, "offsets": tuple(offsets), "n_params": p,
                  "n_units": bounds[-1], "unit_bounds": tuple(bounds),
                  "macs_per_sample": sum(i * o for i, o in shapes)}
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"a Layout is immutable (tried to set {name!r})")

    def __delattr__(self, name):
        raise AttributeError(f"a Layout is immutable (tried to delete {name!r})")

    def __eq__(self, other):
        return isinstance(other, Layout) and other.sizes == self.sizes

    def __hash__(self):
        return hash(self.sizes)

    def __repr__(self):
        return f"Layout({self.sizes})"

    def __reduce__(self):
        return Layout, (self.sizes,)

    @property
    def weight_slices(self):
        """[slice of W_l in the flat buffer] (reshape to ``shapes[l]``)."""
        return [slice(w, b) for w, b, _ in self.offsets]

    @property
    def bias_slices(self):
        """[slice of b_l in the flat buffer]."""
        return [slice(b, e) for _, b, e in self.offsets]

    def views(self, flat):
        """(Ws, bs): views of a flat buffer (params, or a gradient laid out as params) as
        the (fan_in, fan_out) weights and (fan_out,) biases of each layer."""
        Ws = [flat[w:b].reshape(shape) for (w, b, _), shape in zip(self.offsets, self.shapes)]
        bs = [flat[b:e] for _, b, e in self.offsets]
        return Ws, bs

    def split_units(self, A):
        """The column blocks of each layer 1..L of an (n, n_units) array (views)."""
        return [A[:, s:e] for s, e in pairwise(self.unit_bounds)]
