"""Token merging (ToMe: bipartite soft matching) inside a ViT, as AuroraCap applies it, in the project's own code.

AuroraCap (rese1f/aurora, src/xtuner/xtuner/model/aurora.py + tome.py) merges in EVERY encoder layer, between
the attention block and the MLP block:
- the metric is the layer's keys averaged over heads; tokens alternate into two sets (even positions A, odd
  positions B), each A token finds its most similar B token (cosine), and the r best-matched A tokens are merged
  into their partners; the [CLS] token (position 0, in A) is never merged;
- merged features are size-weighted means (each token carries how many patches it stands for);
- r per layer = int(patches * (1 - token_kept_ratio) / num_hidden_layers), capped at half of the mergeable
  tokens in each layer;
- the output order is: the unmerged A tokens in their original order, then every B token.

This module is pure torch (no transformers): the family file drives the CLIP layers and calls these helpers.
A merge step is described by `new_index` (batch, tokens_before): the token each old token is folded into, so
merging features, sizes and the patch -> token map (`owner`, for attention layouts) are one scatter each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def merges_per_layer(n_patches: int, kept_ratio: float, n_layers: int) -> int:
    """Tokens AuroraCap asks each layer to remove: int(patches * (1 - ratio) / layers).

    >>> merges_per_layer(729, 0.2, 32), merges_per_layer(729, 0.8, 32), merges_per_layer(729, 1.0, 32)
    (18, 4, 0)
    """
    if not 0.0 <= kept_ratio <= 1.0:
        raise ValueError(f"token_kept_ratio must be in [0, 1], got {kept_ratio}")
    return int(n_patches * (1.0 - kept_ratio) / n_layers)


def kept_patches(n_patches: int, kept_ratio: float, n_layers: int, merged_layers: int, protected: int = 1) -> int:
    """Patch tokens left after `merged_layers` merging layers (the [CLS] token, `protected`, not counted).

    AuroraCap reads the second-to-last hidden state, so 31 of the 32 layers' merges reach the LLM:
    >>> [kept_patches(729, r, 32, 31) for r in (0.2, 0.4, 0.8, 1.0)]
    [171, 326, 605, 729]
    """
    per_layer = merges_per_layer(n_patches, kept_ratio, n_layers)
    tokens = n_patches + protected
    for _ in range(merged_layers):
        tokens -= min(per_layer, (tokens - protected) // 2)
    return tokens - protected


def bipartite_matching(metric: "torch.Tensor", r: int, protect_first: bool = True
                       ) -> tuple["torch.Tensor", int] | None:
    """One ToMe step on metric (batch, tokens, channels): (new_index (batch, tokens), tokens after), or None
    when nothing is merged. new_index[b, t] is the output position old token t lands in."""
    import torch

    batch, tokens = metric.shape[:2]
    protected = 1 if protect_first else 0
    r = min(r, (tokens - protected) // 2)
    if r <= 0:
        return None
    with torch.no_grad():
        unit = metric / metric.norm(dim=-1, keepdim=True)
        side_a, side_b = unit[:, ::2], unit[:, 1::2]
        scores = side_a @ side_b.transpose(-1, -2)
        if protect_first:
            scores[:, 0, :] = -torch.inf
        best, partner = scores.max(dim=-1)  # each A token's most similar B token
        order = best.argsort(dim=-1, descending=True)
        merged = order[:, :r]
        unmerged = order[:, r:].sort(dim=-1).values  # keep A's original order ([CLS] first)
        n_a, n_b = side_a.shape[1], side_b.shape[1]
        n_unmerged = n_a - r
        device = metric.device
        new_a = torch.empty((batch, n_a), dtype=torch.long, device=device)
        new_a.scatter_(1, unmerged, torch.arange(n_unmerged, device=device).expand(batch, -1))
        new_a.scatter_(1, merged, n_unmerged + partner.gather(1, merged))
        new_index = torch.empty((batch, tokens), dtype=torch.long, device=device)
        new_index[:, ::2] = new_a
        new_index[:, 1::2] = n_unmerged + torch.arange(n_b, device=device)
    return new_index, n_unmerged + n_b


def merge_weighted(x: "torch.Tensor", size: "torch.Tensor | None", new_index: "torch.Tensor", n_out: int
                   ) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Fold x (batch, tokens, channels) into n_out tokens: size-weighted means; returns (x, size (batch, n_out, 1))."""
    import torch

    if size is None:
        size = torch.ones_like(x[..., :1])
    index = new_index[..., None]
    total = torch.zeros((x.shape[0], n_out, x.shape[-1]), dtype=x.dtype, device=x.device)
    total.scatter_add_(1, index.expand(-1, -1, x.shape[-1]), x * size)
    new_size = torch.zeros((x.shape[0], n_out, 1), dtype=size.dtype, device=x.device)
    new_size.scatter_add_(1, index, size)
    return total / new_size, new_size


def follow(owner: "torch.Tensor", new_index: "torch.Tensor") -> "torch.Tensor":
    """owner (batch, original tokens): the current token each original token belongs to, after one more merge."""
    return new_index.gather(1, owner)


def merge_sequence(x: "torch.Tensor", steps: int, r: int
                   ) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
    """`steps` merges of x (batch, tokens, channels) using x itself as the metric (the model uses its keys).

    Returns (x, size (batch, tokens', 1), owner (batch, original tokens)): the merged tokens, how many
    original tokens each stands for, and which merged token each original one ended in.
    """
    import torch

    owner = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    size = None
    for _ in range(steps):
        step = bipartite_matching(x, r)
        if step is None:
            break
        new_index, n_out = step
        x, size = merge_weighted(x, size, new_index, n_out)
        owner = follow(owner, new_index)
    if size is None:
        size = torch.ones_like(x[..., :1])
    return x, size, owner
