"""Caption quality: per-second timelines, metrics that tell detailed from generic, and a model comparison.

- `metrics`: pure functions of caption text (and probe-video ground truth), no torch;
- `timeline`: caption a video window by window (or whole, asking for timestamps) with a model loaded once;
- `report`: the metric tables a notebook shows, built from a timeline;
- `compare`: runs of 04_caption_quality side by side and a ranking under a memory budget;
- `figures`: the timeline view and charts.
"""
