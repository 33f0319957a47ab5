"""Caches and the embedding backend they (and learned routers) share; submodules load lazily."""
