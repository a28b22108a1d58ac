"""Index shards: one self-contained engine index per repository, built on a Ray cluster and
searched together, read-only.

``codesearch shards build`` (:mod:`.ray_build`, needs the ``scale`` extra) writes one shard per
repository plus ``shards.json`` (:mod:`.manifest`); :class:`~.search.ShardSet` mounts a shards
folder and searches every shard at once. Searching never imports Ray.
"""
