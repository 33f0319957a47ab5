"""Response caches: an exact cache keyed on the whole parsed request and a semantic cache that
answers a rephrased last user turn, both scoped by tenant (docs/CACHE.md).

`core.ResponseCache` is what the gateway calls; `settings` holds the config shapes (imported by
config.py, so this package's __init__ imports nothing else).
"""
