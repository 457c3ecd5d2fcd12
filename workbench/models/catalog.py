"""The zoo as a table: every registry id with its status, size and weight memory per quantization."""

from __future__ import annotations

from typing import Any

from workbench.models import registry
from workbench.units import to_gib

QUANTIZATIONS = (("none", False), ("8bit", False), ("4bit-nf4", False), ("4bit-nf4", True))


def catalog(weights: bool = True) -> list[dict[str, Any]]:
    """One row per model id. With `weights`, the real architecture is built on the meta device to
    count parameters and predict weight memory per quantization (no download, no memory)."""
    from workbench.weights import spec_weight_counts, weight_bytes

    rows = []
    for model_id, entry in registry.ENTRIES.items():
        row: dict[str, Any] = {"model_id": model_id, "family": None, "hub_id": None, "status": "ok",
                               "reason": "", "published_params": None}
        if entry.module is None:
            row.update(status="not supported", reason=entry.reason)
            rows.append(row)
            continue
        try:
            adapter = registry.family_adapter(entry.module)
            spec = adapter.specs[model_id]
        except Exception as err:  # one family's missing extra never hides the others
            row.update(status="unavailable", reason=f"{type(err).__name__}: {err}")
            rows.append(row)
            continue
        row.update(family=adapter.family, hub_id=spec.hub_id, published_params=spec.published_params,
                   frame_mode=spec.frame_mode, fixed_frames=spec.fixed_frames)
        if entry.trained_twin:
            row["status"] = "trained twin" if spec.config else "twin, not trained"
            row["reason"] = spec.notes
            if not spec.config:
                rows.append(row)
                continue
        if weights:
            counts = spec_weight_counts(model_id)
            row["params"] = counts.total_params
            row["params_error_pct"] = 100 * (counts.total_params / spec.published_params - 1)
            for quantization, double in QUANTIZATIONS:
                key = f"weights_{quantization}{'_dq' if double else ''}_bytes"
                row[key] = weight_bytes(counts, quantization, "bfloat16", double)
        rows.append(row)
    return rows


def print_catalog(weights: bool = True) -> None:
    rows = catalog(weights)
    header = f"{'model id':<30} {'status':<18} {'params':>8} {'bf16':>8} {'int8':>8} {'nf4':>8}  hub id / reason"
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["status"] == "trained twin":
            params = f"{row['params'] / 1e6:.2f}M"
            print(f"{row['model_id']:<30} {'trained twin':<18} {params:>8} "
                  f"{row['weights_none_bytes'] / 2**20:>7.1f}M {'':>8} {'':>8}  {row['family']} family, {row['hub_id']}")
            continue
        if row["status"] != "ok":
            print(f"{row['model_id']:<30} {row['status']:<18} {'':>8} {'':>8} {'':>8} {'':>8}  {row['reason']}")
            continue
        params = f"{row.get('params', row['published_params']) / 1e9:.2f}B"
        sizes = [f"{to_gib(row[k]):.1f}G" if k in row else "" for k in
                 ("weights_none_bytes", "weights_8bit_bytes", "weights_4bit-nf4_bytes")]
        print(f"{row['model_id']:<30} {'ok':<18} {params:>8} {sizes[0]:>8} {sizes[1]:>8} {sizes[2]:>8}  {row['hub_id']}")
    print("\ntrained twins: MiB once loaded in bf16; load them with source='trained' (docs/twins.md)")
    print("weights: GiB once loaded (bf16 / bitsandbytes int8 / nf4), from the embedded configs on the meta device")
