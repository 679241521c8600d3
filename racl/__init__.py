"""RACL: Adversarially Robust Neural Architectures (Dong, Li, Wang, Xu), reproduced.

One paper concept per module:

=====================  ==========================================================
``operations``         candidate ops of the search space and their Lipschitz parts
``lipschitz``          power iteration on the actual operators (Sec. 3.2)
``lognormal``          Properties 1-2, Proposition 1, propagation (Eqs. 10-12)
``sampler``            log-normal alpha and beta with reparameterisation (Eq. 5)
``supernet``           the PC-DARTS supernet
``constraint``         confidence constraint, ADMM dual, gradient-norm term (13-19)
``search``             Algorithm 1
``genotypes``          discrete cells, published genotypes, derivation, drawing
``data``               datasets and the tensor-resident loader
``profiles``           smoke / mini / paper budgets
``records``            run records, provenance, checkpoints
=====================  ==========================================================
"""

__version__ = "0.1.0"
