"""Stage five: answering a query (candidates, scoring, re-ranking)."""
