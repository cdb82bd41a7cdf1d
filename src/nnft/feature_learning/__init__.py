"""Feature learning: the forward–backward MAP kernels of every layer, adapted to a task.

``nnft.feature_learning.map_kernels(net, x_train, y_train, x_test, kappa=κ)`` — the saddle point of the kernel
action of Fischer, Lindner, Dahmen, Ringel, Krämer, Helias (ICML 2024), whose equations sympy derives from the
rate function (:mod:`.action`), solved in closed form for linear networks, to first order in the error signal
through the four-point vertex V (:mod:`.perturbative`), or in full with tilted Gaussian expectations
(:mod:`.tilted`, :mod:`.saddle`). Theory, conventions and checks: ``docs/feature_learning.md``,
../shared/THEORY.md §5.
"""

from nnft.feature_learning.action import LayerEquations, layer_equations
from nnft.feature_learning.map_kernels import MAPKernels, fluctuation_correction, map_kernels

__all__ = ["LayerEquations", "MAPKernels", "fluctuation_correction", "layer_equations", "map_kernels"]
