"""fastgeo.bench.peak: the FMA loop computes what it claims and compiles to packed FMA
instructions (no timing is asserted)."""

import numpy as np
import pytest

from fastgeo.bench import peak


@pytest.mark.parametrize("lanes", peak.FMA_LANES)
def test_fma_loop_computes_the_chains(lanes):
    x, y, n = np.float32(0.999), np.float32(0.001), 50
    got = peak.fma_kernel(lanes)(n, x, y)
    acc = np.array([1.0 + j / lanes for j in range(lanes)], dtype=np.float32)
    for _ in range(n):
        acc = acc * x + y
    np.testing.assert_allclose(got, acc.sum(dtype=np.float32), rtol=1e-5)


def test_fma_loop_is_vectorized_fma():
    numba = pytest.importorskip("numba")
    if numba.config.DISABLE_JIT:
        pytest.skip("NUMBA_DISABLE_JIT: nothing is compiled")
    import llvmlite.binding as llvm

    if not llvm.get_host_cpu_features().get("fma"):
        pytest.skip("this CPU has no FMA instructions")
    f = peak.fma_kernel(64)
    f(1, np.float32(0.5), np.float32(0.5))
    asm = "\n".join(f.inspect_asm().values())
    assert "vfmadd" in asm and "ps" in asm.split("vfmadd", 1)[1].split()[0]


def test_fma_limit_reports_its_variants():
    out = peak.fma_limit(quick=True, passes=1000)
    assert set(out["variants"]) == set(peak.FMA_LANES) and out["lanes"] in peak.FMA_LANES
    assert out["gflops"] == max(out["variants"].values()) > 0
    with pytest.raises(ValueError):
        peak.fma_limit(passes=0)


def test_matmul_reference():
    out = peak.matmul_gflops(quick=True, n=64)
    assert out["gflops"] > 0 and "numpy matmul 64x64" in out["what"]
