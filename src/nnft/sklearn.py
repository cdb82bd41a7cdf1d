"""scikit-learn kernels of nnft networks: ``nnft.sklearn.NNGPKernel(net)``, ``nnft.sklearn.NTKKernel(net)``.

The implementation is :mod:`nnft.inference.sklearn` (optional extra: ``pip install 'nnft[sklearn]'``).
"""

from nnft.inference.sklearn import NNGPKernel, NTKKernel

__all__ = ["NNGPKernel", "NTKKernel"]
