"""What every task's data shares: image reading, JSON files with errors that name them, the cache directory,
generate-once, a resumable training order, the feature store, and the procedural shape scenes.

A task's data formats, generators, batches and DataModules live under that task's name
(``vltk.tasks.<task>``); see ``docs/architecture.md``.
"""

from vltk.data.cache import default_cache_dir
from vltk.data.images import default_image_transform, load_image, to_rgb

__all__ = ["default_cache_dir", "default_image_transform", "load_image", "to_rgb"]
