"""Spreading votes over neighbouring directions with a sparse symmetric kernel.

A map made of votes (tf_sparse, intensity, CLEAN-SC's clean map) has weight on a few hundred
of a grid's thousands of directions; the kernel's product is gathered from those alone.
"""
from numba import njit


@njit(cache=True)
def spread_votes(indptr, indices, data, votes, out):
    """out = K @ votes for a symmetric K in CSR form (indptr, indices, data), visiting only the
    directions with a vote: row j of a symmetric K is its column j."""
    out[:] = 0.0
    for j in range(votes.shape[0]):
        v = votes[j]
        if v != 0.0:
            for k in range(indptr[j], indptr[j + 1]):
                out[indices[k]] += data[k] * v
