"""Sums of maps: spreading votes over neighbouring directions with a sparse symmetric kernel,
and the weighted running sum of a stream's maps.

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


@njit(cache=True)
def add_weighted(total, values, weights):
    """total += sum(weights) * values (a float32 map into a float64 sum, no temporary);
    returns sum(weights)."""
    w = 0.0
    for k in range(weights.shape[0]):
        w += weights[k]
    for d in range(values.shape[0]):
        total[d] += w * values[d]
    return w
