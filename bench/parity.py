"""How closely an exported model folder reproduces a reference folder's embeddings (e.g. a quantised
export against the fp32 export of the same checkpoint), on the documents and queries of a dev set.

    python bench/parity.py REFERENCE CANDIDATE... [--data fresh/python/dev] [--docs 200] [--queries 100]

Both are run through the engine's ``OnnxEncoder`` exactly as the engine runs them (its batching and
padding). Prints, per candidate, the cosine of each document's and each query's embedding to the
reference's (mean and minimum), and the minimum cosine between a document embedded alone and the same
document embedded in a batch (1.0 for a batch-independent graph).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table
from quality import DATA_ROOT


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("candidates", nargs="+", type=Path)
    parser.add_argument("--data", default="fresh/python/dev", help="a BEIR folder under --data-root")
    parser.add_argument("--data-root", type=Path, default=DATA_ROOT)
    parser.add_argument("--docs", type=int, default=200)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--alone", type=int, default=20, help="documents also embedded one at a time")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    from codesearch.embed.encoder import OnnxEncoder
    from codesearch_trainer.evaluate import load_beir

    data = load_beir(str(args.data_root / args.data), max_queries=args.queries, max_corpus=2 * args.docs,
                     seed=args.seed)
    docs = list(data.corpus.values())[: args.docs]
    queries = list(data.queries.values())[: args.queries]
    reference = OnnxEncoder.from_folder(args.reference, device="cpu")
    ref_docs, ref_queries = reference.encode_documents(docs), reference.encode_queries(queries)
    rows = []
    for folder in args.candidates:
        encoder = OnnxEncoder.from_folder(folder, device="cpu")
        got_docs = encoder.encode_documents(docs)
        doc_cos = cosines(got_docs, ref_docs)
        query_cos = cosines(encoder.encode_queries(queries), ref_queries)
        alone = np.stack([encoder.encode_documents([text])[0] for text in docs[: args.alone]])
        batch_cos = cosines(alone, got_docs[: args.alone])
        rows.append([str(folder), f"{doc_cos.mean():.4f} / {doc_cos.min():.4f}",
                     f"{query_cos.mean():.4f} / {query_cos.min():.4f}", f"{batch_cos.min():.6f}"])
    print(f"reference {args.reference}; {len(docs)} documents and {len(queries)} queries of {args.data} "
          f"(seed {args.seed}); cosine to the reference, mean / min")
    print(table(["model", "documents", "queries", f"alone vs batched, min ({args.alone} docs)"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
