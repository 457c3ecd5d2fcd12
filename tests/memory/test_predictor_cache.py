"""The predictor's architecture cache follows the model's config: a retrained twin (a new config.json in its
committed folder) is not predicted from the counts of the twin it replaced."""

from __future__ import annotations

import dataclasses


def test_cache_key_changes_with_the_config(monkeypatch):
    import workbench.models as models
    from workbench.memory import predictor

    adapter, spec = models.get("twin-qwen2-vl-video")
    before = predictor._cache_key(spec.model_id, "random", {}, "trained", ())
    wider = dataclasses.replace(spec, config={**spec.config, "vision_config": {
        **spec.config["vision_config"], "embed_dim": 2 * spec.config["vision_config"]["embed_dim"]}})
    monkeypatch.setattr(models, "get", lambda model_id: (adapter, wider))
    assert predictor._cache_key(spec.model_id, "random", {}, "trained", ()) != before
    monkeypatch.setattr(models, "get", lambda model_id: (adapter, spec))
    assert predictor._cache_key(spec.model_id, "random", {}, "trained", ()) == before
