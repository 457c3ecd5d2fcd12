"""What notebook 02 tells: frontiers per configuration group, and findings computed from the tables.

Nothing here is hard-coded about a model: the dominant component and the configurations that fit are read
from the predicted (and measured) tables, so the same cells work for every family and budget.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from workbench.memory.frontier import FrontierResult, frame_values, measured_frontier, predicted_frontier
from workbench.memory.grid import Grid, config_label, prepare_sources
from workbench.memory.probe import ProbeConfig
from workbench.units import format_gib, from_gib, to_gib

if TYPE_CHECKING:
    import pandas as pd


def group_configs(grid: Grid) -> list[ProbeConfig]:
    """One configuration per group (frame size x cap x quantization x attention), frames left to the search."""
    seen: dict[str, ProbeConfig] = {}
    for config in grid.configurations():
        seen.setdefault(config_label(config), config)
    return list(seen.values())


def _group_columns(config: ProbeConfig) -> dict[str, Any]:
    return {"config": config_label(config), "quantization": config.quantization,
            "attn_implementation": config.attn_implementation, "frame_size": f"{config.width}x{config.height}",
            "max_pixels": config.max_pixels or 0}


def predicted_frontiers(grid: Grid, budgets_gib: list[float], max_frames: int = 256, device: str = "cuda",
                        **options: Any) -> "pd.DataFrame":
    """Most frames each configuration group fits in each budget, by the predictor (bisection, no probes);
    `options` are predict-only settings (transformers_era, masked_sdpa)."""
    import pandas as pd

    rows = []
    for config in group_configs(grid):
        values = frame_values(config.model, max_frames)
        for gib in budgets_gib:
            result = predicted_frontier(config, from_gib(gib), "frames", values, device, **options)
            rows.append({**_group_columns(config), "budget_gib": gib, "source": "predicted",
                         "max_frames": result.best or 0, "frames_searched_up_to": values[-1],
                         "evaluations": result.n_probes})
    return pd.DataFrame(rows)


def measured_frontiers(grid: Grid, budget_gib: float, max_frames: int = 64, parallel: int = 1,
                       threads: int | None = None, timeout_s: float | None = None, margin: float = 0.1,
                       device: str = "auto", enabled: bool = True) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Measured frontier per configuration group under one budget (groups run `parallel` at a time).

    Returns (one row per group: best frames, probes made, probes skipped; one row per probe or skip);
    both empty when not `enabled` (a predict-only run).
    """
    import pandas as pd

    if not enabled:
        return pd.DataFrame(), pd.DataFrame()
    groups = [c.replace(threads=threads, device=device) if threads else c.replace(device=device)
              for c in group_configs(grid)]
    prepare_sources(groups)

    def search(config: ProbeConfig) -> FrontierResult:
        return measured_frontier(config, from_gib(budget_gib), "frames", frame_values(config.model, max_frames),
                                 margin=margin, timeout_s=timeout_s)

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(search, groups))
    summary, probes = [], []
    for config, result in zip(groups, results):
        summary.append({**_group_columns(config), "budget_gib": budget_gib, "source": "measured",
                        "max_frames": result.best or 0, "first_failing": result.first_failing,
                        "n_values": len(result.values), "n_probes": result.n_probes,
                        "n_skipped": len(result.skipped)})
        table = result.table()
        for column, value in _group_columns(config).items():
            table[column] = value
        probes.append(table)
    return pd.DataFrame(summary), (pd.concat(probes, ignore_index=True) if probes else pd.DataFrame())


def frontier_rows(predicted: "pd.DataFrame", measured: "pd.DataFrame") -> "pd.DataFrame":
    """Predicted and measured frontier rows in one table (the heatmap's input)."""
    import pandas as pd

    columns = ["config", "quantization", "attn_implementation", "frame_size", "max_pixels", "budget_gib", "source",
               "max_frames"]
    frames = [predicted[columns]] + ([measured[columns]] if not measured.empty else [])
    return pd.concat(frames, ignore_index=True)


def combined_table(predicted: "pd.DataFrame", measured: "pd.DataFrame") -> "pd.DataFrame":
    """Predicted rows, with measured columns joined where a configuration was measured; GiB columns added."""
    keys = ["config", "frames"]
    table = predicted.copy()
    if not measured.empty:
        cols = ["status", "phase", "peak_bytes", "reserved_peak_bytes", "error_pct", "device", "memory_kind",
                "wall_seconds"]
        table = table.drop(columns=["status"]).merge(measured[keys + cols], on=keys, how="left")
        table["status"] = table["status"].fillna("predicted")
        # the measured run's own prediction (its device, its text tokens) is the one its error refers to
        own = measured.set_index(keys)["predicted_peak_bytes"]
        table = table.set_index(keys)
        table.loc[own.index, "predicted_peak_bytes"] = own
        table = table.reset_index()
    else:
        table["peak_bytes"] = None
    table["predicted_peak_gib"] = table["predicted_peak_bytes"].map(to_gib)
    table["peak_gib"] = table["peak_bytes"].map(lambda v: None if v is None or v != v else to_gib(v))
    return table


def findings(predicted: "pd.DataFrame", breakdown: "pd.DataFrame", frontiers: "pd.DataFrame",
             budgets_gib: list[float], required_frames: list[int]) -> dict[str, Any]:
    """The answers, computed from the tables: what dominates, and which configurations fit the requirements.

    Dominant: the largest non-weight component at each configuration's peak, counted over the
    configurations that exceed the first budget (all configurations if none does).
    """
    first_budget = from_gib(budgets_gib[0])
    over = predicted[predicted["predicted_peak_bytes"] > first_budget]
    pool = over if not over.empty else predicted
    counts = pool["dominant"].value_counts()
    dominant = counts.index[0] if not counts.empty else "weights"
    parts = breakdown.merge(pool[["config", "frames"]], on=["config", "frames"])
    totals = parts[parts["component"] != "weights"].groupby("component")["bytes"].sum().sort_values(ascending=False)
    result: dict[str, Any] = {
        "dominant_component": dominant,
        "dominant_in": int(counts.iloc[0]) if not counts.empty else 0,
        "configurations_considered": int(len(pool)),
        "considered": "over the first budget" if not over.empty else "all (none over the first budget)",
        "component_bytes_over_considered": {k: int(v) for k, v in totals.items()},
        "requirements": [],
    }
    for gib, frames in zip(budgets_gib, required_frames):
        rows = frontiers[(frontiers["budget_gib"] == gib)]
        fitting = rows[rows["max_frames"] >= frames]
        at_required = predicted[(predicted["frames"] == frames) & ~predicted["within_context"].astype(bool)]
        result["requirements"].append({
            "budget_gib": gib, "required_frames": frames,
            "fitting_configs": sorted(fitting["config"].unique().tolist()),
            "not_fitting_configs": sorted(set(rows["config"]) - set(fitting["config"])),
            # memory allows it, but the prompt is longer than the model's position range
            "beyond_context_configs": sorted(set(fitting["config"]) & set(at_required["config"])),
        })
    return result


def findings_text(found: dict[str, Any]) -> str:
    """The findings as a few Markdown lines for the notebook."""
    lines = [f"- Largest component beside the weights: **{found['dominant_component']}** "
             f"(dominant in {found['dominant_in']} of {found['configurations_considered']} configurations, "
             f"{found['considered']})."]
    for req in found["requirements"]:
        fit = ", ".join(req["fitting_configs"]) or "none"
        lines.append(f"- At least {req['required_frames']} frames in {format_gib(req['budget_gib'])}: {fit}.")
        if req["beyond_context_configs"]:
            lines.append(f"  - of these, {', '.join(req['beyond_context_configs'])} exceed the model's context "
                         f"at {req['required_frames']} frames (memory is not the limit there).")
    return "\n".join(lines)
