"""Stage four: what is stored per workspace (SQLite store, lexical index, HNSW graph) and the indexer
that brings it up to date."""
