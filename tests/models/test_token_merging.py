"""Token merging (ToMe as AuroraCap applies it): the kept-token rule, identity at ratio 1, conserved sizes,
size-weighted means and the patch -> token map. Pure torch, no model."""

from __future__ import annotations

import pytest
import torch

from workbench.models.token_merging import (
    bipartite_matching,
    kept_patches,
    merge_sequence,
    merge_weighted,
    merges_per_layer,
)


@pytest.mark.parametrize("ratio, per_layer, kept", [(0.2, 18, 171), (0.4, 13, 326), (0.8, 4, 605), (1.0, 0, 729)])
def test_kept_tokens_follow_auroracaps_rule(ratio, per_layer, kept):
    """r = int(729 * (1 - ratio) / 32) per layer, 31 merging layers before the second-to-last hidden state."""
    assert merges_per_layer(729, ratio, 32) == per_layer
    assert kept_patches(729, ratio, 32, 31) == kept == 729 - 31 * per_layer
    # the ratio is only approximate: AuroraCap keeps more than round(ratio * 729) below 1.0
    assert kept >= round(ratio * 729)


def test_each_layer_merges_at_most_half_of_the_mergeable_tokens():
    # ratio 0 asks for 91 merges per layer of a 4-layer tower: capped at half the tokens each time
    assert merges_per_layer(729, 0.0, 8) == 91
    tokens = 730
    for _ in range(3):
        tokens -= min(91, (tokens - 1) // 2)
    assert kept_patches(729, 0.0, 8, 3) == tokens - 1
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        merges_per_layer(729, 1.5, 32)


def test_ratio_one_is_the_identity():
    x = torch.randn(2, 730, 8)
    assert bipartite_matching(x, 0) is None
    merged, size, owner = merge_sequence(x, steps=3, r=0)
    assert torch.equal(merged, x) and torch.equal(owner[0], torch.arange(730))
    assert torch.all(size == 1)


def test_sizes_sum_to_the_original_count_and_owner_is_consistent():
    torch.manual_seed(0)
    x = torch.randn(3, 730, 16)
    merged, size, owner = merge_sequence(x, steps=4, r=40)
    assert merged.shape == (3, 730 - 4 * 40, 16)
    assert torch.all(size.sum(dim=1).squeeze(-1) == 730)
    for b in range(3):  # each merged token's size is the number of original tokens folded into it
        assert torch.equal(torch.bincount(owner[b], minlength=merged.shape[1]).float(), size[b, :, 0])
    # the [CLS] token (position 0) is never merged and stays first
    assert torch.all(owner[:, 0] == 0) and torch.all(size[:, 0, 0] == 1)


def test_merged_features_are_size_weighted_means_of_their_sources():
    torch.manual_seed(1)
    x = torch.randn(1, 101, 4, dtype=torch.float64)
    merged, size, owner = merge_sequence(x, steps=3, r=15)
    for token in range(merged.shape[1]):
        sources = x[0, owner[0] == token]
        torch.testing.assert_close(merged[0, token], sources.mean(dim=0))  # sizes-weighted = mean of originals


def test_one_step_merges_the_most_similar_pair_into_the_odd_side():
    # tokens: [CLS], a, b, c, d, e: a (index 1, odd) and d (index 4, even) are identical, so d joins a
    x = torch.tensor([[[9.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0.5, 0.5, 0]]])
    new_index, n_out = bipartite_matching(x, 1)
    assert n_out == 5
    # output order: unmerged even tokens (CLS, 2) in order, then the odd tokens (1, 3, 5)
    assert new_index[0].tolist() == [0, 2, 1, 3, 2, 4]
    merged, size = merge_weighted(x, None, new_index, n_out)
    assert size[0, :, 0].tolist() == [1, 1, 2, 1, 1]
    torch.testing.assert_close(merged[0, 2], torch.tensor([1.0, 0, 0]))
