"""Learning with the kernels: Bayesian posterior and gradient-descent predictions, at infinite and finite width.

``nnft.posterior(net, x_train, y_train, x_test, noise=σ_ε², order=0|1)`` (:mod:`nnft.inference.posterior`),
``nnft.gradient_descent(net, x_train, y_train, x_test, t=…, learning_rate=…)``
(:mod:`nnft.inference.gradient_descent`) and scikit-learn kernels (:mod:`nnft.inference.sklearn`, optional
extra). Derivations: ``docs/inference.md`` and ../shared/THEORY.md §2, §6.
"""
