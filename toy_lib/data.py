"""Synthetic sparse data: each feature is active with its own probability, with value U[0, 1].

Every batch has shape ``(instance, batch, feature)``: the instance axis comes first everywhere
in toy_lib, so that one tensor program trains many independent models at once.
"""

from __future__ import annotations

import torch


def generate_batch(
    feature_probability: torch.Tensor,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw a batch of sparse feature vectors.

    Each entry ``x[i, b, f]`` is independently non-zero with probability
    ``feature_probability[i, f]``; a non-zero entry is uniform on [0, 1].

    Args:
        feature_probability: ``(instance, feature)`` probabilities in [0, 1]. Its device and
            dtype set those of the batch.
        batch_size: number of samples per instance.
        generator: a seeded ``torch.Generator`` on the same device, for reproducible batches.

    Returns:
        ``x``: ``(instance, batch, feature)``.
    """
    if feature_probability.ndim != 2:
        raise ValueError(
            f"feature_probability has shape {tuple(feature_probability.shape)}: expected "
            "(instance, feature)"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
    n_instances, n_features = feature_probability.shape
    shape = (n_instances, batch_size, n_features)
    kw = dict(device=feature_probability.device, dtype=feature_probability.dtype)
    values = torch.rand(shape, generator=generator, **kw)
    active = torch.rand(shape, generator=generator, **kw) < feature_probability[:, None, :]
    return values * active
