"""Moments ↔ cumulants through set partitions, and unbiased estimators built the same way.

Everything here rests on one identity (Leonov–Shiryaev; McCullagh, *Tensor Methods in Statistics*,
1987, ch. 2–4): for random variables ``X_1 … X_k``

    κ(X_1, …, X_k) = Σ_π (−1)^{|π|−1} (|π|−1)! Π_{B ∈ π} E[Π_{i∈B} X_i]

(the Möbius function μ(π, 1̂) of the partition lattice), the sum running over the set partitions π of
``{1..k}``, and conversely ``E[X_1 ⋯ X_k] = Σ_π Π_{B∈π} κ(X_B)``. The other end of the lattice,
μ(0̂, π) = Π_{B∈π} (−1)^{|B|−1} (|B|−1)!, turns sums over *all* index tuples into sums over tuples
of *distinct* indices:

    Σ_{r_1,…,r_k distinct} Π_j f_j(r_j) = Σ_π μ(0̂, π) Π_{B∈π} Σ_r Π_{j∈B} f_j(r),

which is how unbiased estimators of products of means (U-statistics over distinct samples,
the "generalised k-statistics" / polykays of Tukey and McCullagh) are computed from power sums in
O(k-th Bell number) work instead of O(N^k). The k-statistics of Fisher follow as the special case of
one variable and are checked against :func:`scipy.stats.kstat` in the tests.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import cache

import numpy as np

__all__ = [
    "cumulant_coefficient",
    "cumulants_from_moments",
    "distinct_sum",
    "falling_factorial",
    "joint_cumulant",
    "k_statistic",
    "mobius",
    "moments_from_cumulants",
    "neuron_cumulant_terms",
    "set_partitions",
    "unbiased_product_of_means",
]


def set_partitions(items: int | Sequence) -> Iterator[list[list]]:
    """All set partitions of ``items`` (or of ``range(items)``), each a list of blocks; Bell(k) of them.

    Generated recursively: the first element either joins a block of a partition of the rest or
    forms its own block (standard construction, Knuth TAOCP 7.2.1.5).
    """
    seq = list(range(items)) if isinstance(items, int) else list(items)
    if not seq:
        yield []
        return
    first, rest = seq[0], seq[1:]
    for part in set_partitions(rest):
        for i in range(len(part)):
            yield [*part[:i], [first, *part[i]], *part[i + 1 :]]
        yield [[first], *part]


@cache
def _partitions_of(k: int) -> tuple[tuple[tuple[int, ...], ...], ...]:
    return tuple(tuple(tuple(b) for b in p) for p in set_partitions(k))


def mobius(partition: Sequence[Sequence]) -> int:
    """The Möbius function μ(0̂, π) = Π_{B∈π} (−1)^{|B|−1} (|B|−1)! of the partition lattice."""
    out = 1
    for block in partition:
        b = len(block)
        out *= (-1) ** (b - 1) * math.factorial(b - 1)
    return out


def falling_factorial(n: int | float, k: int) -> float:
    """n (n−1) ⋯ (n−k+1), the number of ordered k-tuples of distinct elements of an n-set."""
    out = 1.0
    for i in range(k):
        out *= n - i
    return out


def cumulant_coefficient(n_blocks: int) -> int:
    """The coefficient μ(π, 1̂) = (−1)^{|π|−1} (|π|−1)! of a partition with |π| blocks in κ from moments."""
    return (-1) ** (n_blocks - 1) * math.factorial(n_blocks - 1)


def joint_cumulant(moment: Callable[[tuple[int, ...]], float], k: int):
    """The joint cumulant κ(X_0, …, X_{k−1}) = Σ_π (−1)^{|π|−1}(|π|−1)! Π_{B∈π} moment(B).

    ``moment(block)`` returns E[Π_{i∈block} X_i] for a tuple of variable indices (arrays broadcast).
    """
    total = 0.0
    for part in _partitions_of(k):
        term = cumulant_coefficient(len(part))
        for block in part:
            term = term * moment(block)
        total = total + term
    return total


def cumulants_from_moments(moments: Sequence[float]) -> list[float]:
    """Univariate cumulants κ_1..κ_k from raw moments μ'_1..μ'_k (``moments[j]`` = E[X^{j+1}])."""
    k = len(moments)
    return [joint_cumulant(lambda b: moments[len(b) - 1], n) for n in range(1, k + 1)]


def moments_from_cumulants(cumulants: Sequence[float]) -> list[float]:
    """Univariate raw moments μ'_n = Σ_π Π_{B∈π} κ_{|B|} from cumulants κ_1..κ_k."""
    out = []
    for n in range(1, len(cumulants) + 1):
        total = 0.0
        for part in _partitions_of(n):
            term = 1.0
            for block in part:
                term *= cumulants[len(block) - 1]
            total += term
        out.append(total)
    return out


def distinct_sum(power_sum: Callable[[tuple[int, ...]], np.ndarray | float], k: int):
    """Σ over ordered k-tuples of *distinct* sample indices of Π_j f_j(r_j), from power sums.

    ``power_sum(block)`` must return Σ_r Π_{j∈block} f_j(r) (block: tuple of slot indices 0..k−1).
    Möbius inversion on the partition lattice: Σ_distinct = Σ_π μ(0̂, π) Π_{B∈π} power_sum(B).
    """
    total = 0.0
    for part in _partitions_of(k):
        term = mobius(part)
        for block in part:
            term = term * power_sum(block)
        total = total + term
    return total


def unbiased_product_of_means(*features: np.ndarray) -> np.ndarray | float:
    """Unbiased estimate of E[f_1] E[f_2] ⋯ E[f_k] from N i.i.d. rows ``features[j][r]``.

    The U-statistic ``Σ_{r_1..r_k distinct} Π_j f_j(r_j) / N(N−1)⋯(N−k+1)`` (needs N ≥ k), computed
    from power sums with :func:`distinct_sum`. Extra trailing axes are estimated elementwise.
    """
    arrays = [np.asarray(f, dtype=np.float64) for f in features]
    k = len(arrays)
    n = arrays[0].shape[0]
    if any(a.shape[0] != n for a in arrays):
        raise ValueError("all features need the same number of samples (first axis)")
    if n < k:
        raise ValueError(f"an unbiased product of {k} means needs at least {k} samples, got {n}")

    def ps(block):
        prod = arrays[block[0]]
        for j in block[1:]:
            prod = prod * arrays[j]
        return prod.sum(axis=0)

    return distinct_sum(ps, k) / falling_factorial(n, k)


def k_statistic(data, order: int) -> float:
    """Fisher's k-statistic k_n: the unique symmetric unbiased estimator of the n-th cumulant κ_n.

    Built as Σ_π c(π) · U(Π_{B∈π} μ'_{|B|}) with κ_n = Σ_π c(π) Π_B μ'_{|B|}, c(π) = (−1)^{|π|−1}(|π|−1)!
    (raw moments μ'),
    each product of moments replaced by its U-statistic over distinct samples, which needs only the
    power sums S_j = Σ_r x_r^j. Valid for any order ≤ the sample size.
    """
    x = np.asarray(data, dtype=np.float64).ravel()
    n = x.size
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    if n < order:
        raise ValueError(f"k_{order} needs at least {order} samples, got {n}")
    sums = {j: float(np.sum(x**j)) for j in range(1, order + 1)}
    total = 0.0
    for part in _partitions_of(order):
        sizes = [len(b) for b in part]
        t = len(sizes)
        est = distinct_sum(lambda blk, sizes=sizes: sums[sum(sizes[j] for j in blk)], t) / falling_factorial(n, t)
        total += cumulant_coefficient(t) * est
    return total


def neuron_cumulant_terms(labels: str | Sequence, *, even: bool = True) -> dict[tuple[tuple[int, ...], ...], int]:
    """The moment products of a joint cumulant of exchangeable, sign-symmetric neurons, with coefficients.

    ``labels`` names the neuron of each slot, e.g. ``"iiiijj"`` for κ(z_i, z_i, z_i, z_i, z_j, z_j) with
    i ≠ j. Every block of a partition is a mixed moment E[Π_a z_{a}^{k_a}] over distinct neurons, which by
    exchangeability depends only on the sorted multiplicities ``(k_1 ≥ k_2 ≥ …)``: that tuple is the
    block's key. With ``even`` (z → −z symmetry of each neuron, exact at initialisation) blocks with an
    odd multiplicity vanish and are dropped. Returns ``{sorted tuple of block keys: coefficient}``, e.g.
    ``"iiiijj"`` → ``{((4, 2),): 1, ((4,), (2,)): −1, ((2,), (2, 2)): −6, ((2,), (2,), (2,)): 6}``.
    """
    labels = list(labels)
    out: Counter = Counter()
    for part in _partitions_of(len(labels)):
        keys = []
        zero = False
        for block in part:
            mult = tuple(sorted(Counter(labels[j] for j in block).values(), reverse=True))
            if even and any(m % 2 for m in mult):
                zero = True
                break
            keys.append(mult)
        if zero:
            continue
        out[tuple(sorted(keys))] += cumulant_coefficient(len(part))
    return {k: v for k, v in out.items() if v != 0}
