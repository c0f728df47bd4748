"""Checkpoints: `save`/`load` (torch.save / torch.load) and `CheckpointManager`, backed by orbax.

This package is the only place in jaxmodule that imports orbax (lazily, on first use).
"""

from .manager import CheckpointManager
from .serialization import load, save

__all__ = ["save", "load", "CheckpointManager"]
