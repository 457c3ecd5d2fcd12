"""Video-captioning model workbench: the helper package behind the notebooks.

Kept import-light on purpose: heavy libraries (torch, transformers, decord) are imported inside the
functions that need them, so `import workbench` and `python -m workbench --help` stay fast.
"""

__version__ = "0.1.0"
