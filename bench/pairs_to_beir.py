"""Turn a training-pairs file into a BEIR folder, to use pairs that were never trained on as a dev set.

CoNaLa has only train pairs and a test set; its train pairs (2,379 Stack Overflow intents → short
Python snippets), kept out of training, are its dev set:

    python bench/pairs_to_beir.py ../shared/data/conala/train-pairs.jsonl /tmp/conala-dev
    python bench/quality.py /tmp/conala-dev --model ...

The corpus holds each distinct snippet once (whitespace-normalised); each distinct query is one query,
relevant to every snippet it was paired with. Ids are stable for the same input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _norm(text: str) -> str:
    return " ".join(text.split())


def pairs_to_beir(pairs_file: Path, out: Path, language: str = "python") -> tuple[int, int]:
    """Write ``corpus.jsonl``, ``queries.jsonl`` and ``qrels.tsv``; returns (documents, queries)."""
    docs: dict[str, str] = {}  # normalised code -> id
    corpus: list[dict[str, str]] = []
    queries: dict[str, str] = {}  # normalised query -> id
    query_rows: list[dict[str, str]] = []
    qrels: set[tuple[str, str]] = set()
    with open(pairs_file, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            query, code = str(row.get("query") or "").strip(), str(row.get("code") or "")
            if not query or not code.strip():
                continue
            key = _norm(code)
            if key not in docs:
                docs[key] = f"d{len(docs)}"
                corpus.append({"_id": docs[key], "title": "", "text": code,
                               "language": str(row.get("language") or language)})
            qkey = _norm(query).lower()
            if qkey not in queries:
                queries[qkey] = f"q{len(queries)}"
                query_rows.append({"_id": queries[qkey], "text": query})
            qrels.add((queries[qkey], docs[key]))
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus), encoding="utf-8")
    (out / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in query_rows), encoding="utf-8")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in sorted(qrels)]
    (out / "qrels.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(corpus), len(query_rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("pairs", type=Path, help="JSON lines {query, code, language?}")
    parser.add_argument("out", type=Path, help="BEIR folder to write")
    args = parser.parse_args(argv)
    n_docs, n_queries = pairs_to_beir(args.pairs, args.out)
    print(f"{args.out}: {n_docs} documents, {n_queries} queries", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
