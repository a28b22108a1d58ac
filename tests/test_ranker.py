"""The ranker: hard-negative mining, pair encoding, re-ranking and graceful degradation (no torch needed
except where marked), then a tiny random cross-encoder: training, checkpoints, export parity, serving."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
from codesearch.embed.manifest import ModelManifest
from codesearch.query.rerank import (
    RANKER_SOURCE,
    OnnxRanker,
    encode_pairs,
    load_ranker,
    pair_budget,
    rerank,
    rerank_hits,
)
from codesearch.types import SearchHit
from test_trainer_train import NOUNS, VERBS, make_dev, make_pairs

# ---------------------------------------------------------------------------------------------
# Mining (numpy only: a fake retriever)


def _unit(v: np.ndarray) -> np.ndarray:
    return (v / np.linalg.norm(v, axis=-1, keepdims=True)).astype(np.float32)


def _fake_corpus(n: int = 40, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    rng = np.random.default_rng(seed)
    docs = _unit(rng.standard_normal((n, dim)))
    queries = _unit(docs + 0.6 * rng.standard_normal((n, dim)))
    codes = [f"def f{i}(a{i}, b{i}):\n    return helper_{i}(a{i}) + other_{i}(b{i})\n" for i in range(n)]
    texts = [f"query number {i}" for i in range(n)]
    return queries, docs, codes, texts


def test_duplicate_filter_criteria() -> None:
    from codesearch_trainer.ranker_data import DuplicateFilter

    codes = ["def a(x):\n    return x + 1\n", "def a(x):\n  return x + 1", "def b(y): return y * 2",
             "def a(x):\n    return   x+1", "def c(z): pass", "def d(w): pass"]
    vectors = _unit(np.eye(6, dtype=np.float32) + np.array([0, 0, 0, 0, 0, 0], dtype=np.float32))
    vectors[4] = vectors[0]
    queries = ["add one", "x", "y", "z", "w", "Add one."]
    dup = DuplicateFilter(codes, doc_vectors=vectors, queries=queries)
    assert dup.is_duplicate(0, 0)  # the gold item itself
    assert dup.is_duplicate(0, 1)  # same code modulo whitespace
    assert not dup.is_duplicate(0, 2)
    assert dup.is_duplicate(0, 3)  # same token set
    assert dup.is_duplicate(0, 4)  # retriever cosine 1
    assert dup.is_duplicate(0, 5)  # same query: a second positive


def test_mining_never_returns_gold_or_its_duplicates_and_stays_below_gold() -> None:
    from codesearch_trainer.ranker_data import MiningConfig, mine_hard_negatives

    queries, docs, codes, texts = _fake_corpus()
    queries[0] = docs[0]  # query 0's gold scores 1.0
    rng = np.random.default_rng(1)
    for j, step in ((1, 0.25), (2, 0.05), (3, 0.25), (4, 0.25)):  # just below the gold item for query 0
        noise = rng.standard_normal(docs.shape[1]).astype(np.float32)
        noise -= (noise @ docs[0]) * docs[0]
        docs[j] = _unit(docs[0] + step * _unit(noise))
    codes[1] = codes[0].replace("    ", "\t ") + "\n\n"  # exact duplicate modulo whitespace
    codes[3] = "def f0(a0, b0):\n    return other_0(b0) + helper_0(a0)\n"  # same tokens: near duplicate
    texts[4] = texts[0].upper() + "."  # a second positive of query 0
    # item 2 is a near duplicate by the retriever's cosine (≈ 0.999)
    off = mine_hard_negatives(queries, docs, codes, config=MiningConfig(1, 5, 1.01, 1.01))
    # without the near-duplicate tests they are the hardest negatives (exact copies are always skipped)
    assert {2, 3, 4} <= set(off.windows[0]) and 1 not in off.windows[0]
    mined = mine_hard_negatives(queries, docs, codes, queries=texts, config=MiningConfig(1, 5))
    assert len(mined.windows) == len(codes)
    for i, window in enumerate(mined.windows):
        assert i not in window and len(window) == 5
        scores = docs @ queries[i]
        assert all(scores[j] <= scores[i] for j in window), "negatives come from below the gold item"
        assert window == sorted(window, key=lambda j: -scores[j])
    assert not {1, 2, 3, 4} & set(mined.windows[0])
    assert mined.duplicates_skipped >= 4
    assert mined.gold_ranks[0] == 1 and mined.stats()["pairs"] == len(codes)


def test_window_start_and_size_select_ranks_below_gold() -> None:
    from codesearch_trainer.ranker_data import MiningConfig, mine_hard_negatives

    # one query; the gold item is ranked 3rd; 10 distinct candidates in known order
    n = 12
    scores = np.linspace(1.0, 0.0, n)
    docs = np.zeros((n, n), dtype=np.float32)
    docs[np.arange(n), np.arange(n)] = 1.0
    query = scores.astype(np.float32)[None, :]
    codes = [f"unique_{i} = compute_{i}()" for i in range(n)]
    full = mine_hard_negatives(query, docs, codes, gold=[2], config=MiningConfig(1, 20, 1.01, 1.01))
    assert full.gold_ranks == [3]
    assert full.windows[0] == list(range(3, n))
    mid = mine_hard_negatives(query, docs, codes, gold=[2], config=MiningConfig(3, 4, 1.01, 1.01))
    assert mid.windows[0] == [5, 6, 7, 8]
    with pytest.raises(ValueError):
        MiningConfig(window_start=0).validate()


def test_sampling_hard_and_random_excludes_gold_and_duplicates() -> None:
    from codesearch_trainer.ranker_data import DuplicateFilter, MinedNegatives, sample_negatives

    codes = [f"def g{i}():\n    return value_{i} * {i}\n" for i in range(20)]
    codes[5] = codes[0]  # exact duplicate of the gold for pair 0
    texts = [f"question {i}" for i in range(20)]
    texts[6] = texts[0]  # another positive of query 0
    dup = DuplicateFilter(codes, queries=texts)
    mined = MinedNegatives(windows=[[5, 6, 7, 8, 9]] + [[0, 1, 2]] * 19, gold_ranks=[1] * 20)
    rng = random.Random(0)
    for _ in range(30):
        hard = sample_negatives([0, 1], 4, rng, mode="hard", corpus_size=20, duplicates=dup, mined=mined)
        assert not {0, 5, 6} & set(hard[0]) and len(hard[0]) == 4
        assert 1 not in hard[1] and len(set(hard[1])) == 4
        rand = sample_negatives(list(range(8)), 5, rng, mode="random", corpus_size=20, duplicates=dup)
        assert not {0, 5, 6} & set(rand[0])
        for i, negs in enumerate(rand):
            assert i not in negs and len(negs) == 5


# ---------------------------------------------------------------------------------------------
# Pair encoding, re-ranking, degradation (no torch)


def _word_tokenizer(words: list[str] | None = None):  # a tiny BERT-like tokenizers.Tokenizer
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = specials + sorted(set((words or []) + VERBS + NOUNS + list("abcdefghijklmnopqrstuvwxyz0123456789")
                                  + ["def", "return", "the", "a", "(", ")", ":", ".", ",", "_", "=", "+", "x", "y"]))
    ids = {t: i for i, t in enumerate(vocab)}
    tok = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return tok


def test_pair_encoding_gives_the_query_first_budget() -> None:
    tok = _word_tokenizer()
    assert pair_budget(5, 32, 8) == (5, 24)
    assert pair_budget(50, 32, 8) == (8, 21)
    feeds = encode_pairs(tok, "read the file " * 10, ["def x ( ) : return y " * 20, "x"], max_length=24,
                         query_max_length=6)
    ids, mask, types = feeds["input_ids"], feeds["attention_mask"], feeds["token_type_ids"]
    assert ids.shape == (2, 24)  # dynamic padding to the longest pair
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    assert ids[0, 0] == cls and ids[0, 7] == sep and ids[0, 23] == sep  # 6 query tokens, code fills the rest
    assert mask[0].sum() == 24 and types[0, :8].sum() == 0 and types[0, 8:].all()
    assert mask[1].sum() == 1 + 6 + 1 + 1 + 1 and ids[1, mask[1].sum():].sum() == 0
    same = encode_pairs(tok, ["read the file " * 10] * 2, ["def x ( ) : return y " * 20, "x"], 24, 6)
    assert all(np.array_equal(feeds[k], same[k]) for k in feeds)


def _hits(scores: list[float]) -> list[SearchHit]:
    return [SearchHit(path=f"f{i}.py", start_line=1, end_line=2, symbol=f"s{i}", container="", kind="function",
                      language="python", score=s, snippet="", sources=("dense",)) for i, s in enumerate(scores)]


def test_rerank_changes_order_only_within_top_k() -> None:
    hits = _hits([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    out = rerank(hits, np.array([0.1, 2.0, 0.1, 5.0]), k=4)
    assert [h.symbol for h in out] == ["s3", "s1", "s0", "s2", "s4", "s5"]  # ties keep retriever order
    assert out[4:] == hits[4:]  # untouched below k
    assert [h.score for h in out[:4]] == [0.9, 0.8, 0.7, 0.6]  # monotone score slots
    assert all(RANKER_SOURCE in h.sources for h in out[:4]) and RANKER_SOURCE not in out[4].sources
    assert rerank(hits, np.zeros(0), k=0) == hits
    assert [h.symbol for h in rerank(hits[:2], np.array([0.0, 1.0, 9.0]), k=10)] == ["s1", "s0"]
    assert rerank(hits, np.array([np.nan, 1.0]), k=2)[0].symbol == "s1"
    with pytest.raises(ValueError):
        rerank(hits, np.array([1.0]), k=3)


def test_missing_or_broken_ranker_degrades_to_retrieval(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert load_ranker(None) == (None, None)
    with caplog.at_level(logging.WARNING, logger="codesearch.query.rerank"):
        ranker, reason = load_ranker(tmp_path / "nope")
    assert ranker is None and reason and "does not exist" in reason and "without re-ranking" in reason
    assert "does not exist" in caplog.text
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    assert load_ranker(broken)[0] is None and "cannot read" in (load_ranker(broken)[1] or "")
    manifest = ModelManifest(id="x", dimension=1, max_length=64, kind="ranker", output="scores")
    manifest.write(broken)
    (broken / "model.onnx").write_bytes(b"this is not an onnx graph")
    _word_tokenizer().save(str(broken / "tokenizer.json"))
    ranker, reason = load_ranker(broken, device="cpu")
    assert ranker is None and reason and "cannot be loaded" in reason
    encoder = tmp_path / "encoder"
    encoder.mkdir()
    ModelManifest(id="e", dimension=8, max_length=64).write(encoder)
    (encoder / "model.onnx").write_bytes(b"x")
    (encoder / "tokenizer.json").write_text("{}")
    ranker, reason = load_ranker(encoder, device="cpu")
    assert ranker is None and reason and "not a ranker" in reason

    class Failing:
        def score(self, query: str, documents: list[str]) -> np.ndarray:
            raise RuntimeError("boom")

    hits = _hits([0.9, 0.8, 0.7])
    out, info = rerank_hits(Failing(), "q", hits, ["a", "b", "c"], k=3)  # type: ignore[arg-type]
    assert out == hits and info.skipped and "boom" in info.skipped
    out, info = rerank_hits(None, "q", hits, ["a", "b", "c"], k=3)
    assert out == hits and info.skipped == "no ranker configured"


def test_rerank_metrics_match_the_full_ranking_metrics() -> None:
    pytest.importorskip("torch")
    from codesearch_trainer.evaluate import BeirData, retrieval_metrics
    from codesearch_trainer.ranker_train import rerank_metrics, retrieve_set
    from conftest import FakeEncoder

    rng = random.Random(3)
    corpus = {f"d{i}": f"def {rng.choice(VERBS)}_{rng.choice(NOUNS)}_{i}(): pass" for i in range(60)}
    queries = {f"q{i}": f"{rng.choice(VERBS)} {rng.choice(NOUNS)}" for i in range(25)}
    qrels = {q: {f"d{rng.randrange(30)}": 1.0, f"d{30 + rng.randrange(30)}": 2.0} for q in queries}
    data = BeirData("toy/dev", corpus, queries, qrels)
    encoder = FakeEncoder()
    rset = retrieve_set(data, encoder, key="fake", depth=12, cache_dir=None)
    full = encoder.encode_queries(list(queries.values())) @ encoder.encode_documents(list(corpus.values())).T
    relevance = [{int(c): g for c, (_, g) in rel.items()} for rel in rset.relevant]
    assert rerank_metrics(rset, None, 0) == pytest.approx(retrieval_metrics(full, relevance))
    ranker = np.asarray([[rng.random() for _ in range(12)] for _ in queries], dtype=np.float32)
    for k in (5, 12):
        matrix = full.astype(np.float64).copy()
        for q in range(len(queries)):
            order = sorted(range(k), key=lambda i, q=q: -ranker[q, i])
            for pos, i in enumerate(order):
                matrix[q, rset.top[q, i]] = 10.0 + k - pos  # top k in ranker order above the rest
        want = retrieval_metrics(matrix.astype(np.float32), relevance)
        assert rerank_metrics(rset, ranker, k) == pytest.approx(want)


# ---------------------------------------------------------------------------------------------
# A tiny random cross-encoder (torch)


def _tiny_ranker(seed: int = 0, pooling: str = "mean"):
    torch = pytest.importorskip("torch")
    from codesearch_trainer.ranker_model import RankerSettings, build_cross_encoder
    from transformers import BertConfig

    tok = _word_tokenizer()
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                        vocab_size=tok.get_vocab_size(), max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(seed)
    return build_cross_encoder(config, tok, RankerSettings(max_length=48, query_max_length=12, pooling=pooling),
                               seed=seed)


def test_tiny_cross_encoder_loss_goes_down() -> None:
    torch = pytest.importorskip("torch")
    from codesearch_trainer.data import Pair
    from codesearch_trainer.ranker_train import build_groups, group_loss

    model = _tiny_ranker(pooling="cls")
    pairs = [Pair(f"{v} the {n}", f"def {v}_{n}(x):\n    return {n}.{v}(x)\n")
             for v in VERBS[:4] for n in NOUNS[:2]]
    batch = list(range(len(pairs)))
    negatives = [[(i + 1) % len(pairs), (i + 3) % len(pairs), (i + 5) % len(pairs)] for i in batch]
    queries, codes, width = build_groups(pairs, batch, negatives)
    assert width == 4 and codes[0] == pairs[0].code and codes[4] == pairs[1].code
    feeds = model.encode(queries, codes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(12):
        loss = group_loss(model(**feeds), width, temperature=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[0] == pytest.approx(np.log(width), abs=0.05)  # a fresh head scores all pairs alike
    assert min(losses[-4:]) < 0.7 * losses[0], losses


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny base folder, a fake retriever, and a short hard-negative run with dev selection."""
    pytest.importorskip("torch")
    import codesearch_trainer.ranker_train as rt
    from codesearch_trainer.ranker_train import RankerTrainConfig, train_ranker
    from conftest import FakeEncoder

    root = tmp_path_factory.mktemp("ranker")
    model = _tiny_ranker()
    base = root / "base"
    model.transformer.save_pretrained(base)
    model.tokenizer.save(str(base / "tokenizer.json"))
    retriever = root / "retriever"
    retriever.mkdir()
    pairs, dev = make_pairs(root / "pairs.jsonl"), make_dev(root / "dev", 10)
    original = rt.open_retriever
    rt.open_retriever = lambda spec, device=None, batch_size=64: FakeEncoder()  # type: ignore[assignment]
    try:
        out = root / "run"
        cfg = RankerTrainConfig(output=str(out), retriever=str(retriever), data=[str(pairs)], dev=[str(dev)],
                                model=str(base), negatives="hard", window_size=6, negatives_per_query=3,
                                batch_size=4, max_steps=6, eval_every=3, max_length=48, query_max_length=12,
                                lr=1e-3, warmup_ratio=0.0, dev_rerank_k=5, log_every=1, progress=False)
        result = train_ranker(cfg)
        resumed = train_ranker(RankerTrainConfig(**{**cfg.__dict__, "max_steps": 9, "resume": str(out)}))
    finally:
        rt.open_retriever = original  # type: ignore[assignment]
    assert result.steps == 6 and resumed.steps == 9
    return {"run": out, "best": out / "best", "base": base, "retriever": retriever, "pairs": pairs}


def test_training_run_checkpoints_selects_on_dev_and_resumes(trained: dict[str, Path]) -> None:
    out = trained["run"]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    kinds = {r["type"] for r in records}
    assert {"mining", "config", "train", "eval", "eval-retriever", "done"} <= kinds
    mining = next(r for r in records if r["type"] == "mining")
    assert mining["pairs"] == 48 and mining["empty_windows"] == 0
    steps = [r["step"] for r in records if r["type"] == "train"]
    assert steps == list(range(1, 10))  # the resumed run went on from step 6
    evals = [r for r in records if r["type"] == "eval"]
    assert [e["step"] for e in evals] == [3, 6, 9]
    best = max(evals, key=lambda e: e["dev_mrr"])
    saved = json.loads((out / "best" / "codesearch_ranker.json").read_text())
    assert saved["training"]["dev_mrr"] == pytest.approx(max(e["dev_mrr"] for e in evals))
    assert saved["training"]["step"] in {e["step"] for e in evals if e["dev_mrr"] == best["dev_mrr"]}
    assert not (out / "best" / "training_state.pt").exists()
    assert sorted(p.name for p in out.glob("step-*")) == ["step-9"]  # older checkpoints pruned
    windows = json.loads((out / "negatives.json").read_text())["windows"]
    assert all(i not in w for i, w in enumerate(windows))


def _small_run_config(trained: dict[str, Path], out: Path, pairs: Path, **kw: object):
    from codesearch_trainer.ranker_train import RankerTrainConfig

    base = dict(output=str(out), retriever=str(trained["retriever"]), data=[str(pairs)], model=str(trained["base"]),
                negatives="random", negatives_per_query=3, batch_size=4, max_length=48, query_max_length=12,
                lr=1e-3, warmup_ratio=0.0, log_every=1, progress=False)
    return RankerTrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _train_losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["type"] == "train"}  # a repeated step: the later run


def test_resume_after_a_crash_goes_on_as_if_uninterrupted(trained: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Two epochs of 6 steps, checkpoints every 4; a crash at step 10 resumes from step-8 (epoch 2,
    2 batches done) and must give the same losses and weights as the run that never stopped."""
    torch = pytest.importorskip("torch")
    import codesearch_trainer.ranker_train as rt
    from codesearch_trainer.ranker_train import train_ranker
    from codesearch_trainer.train import STATE_FILE

    pairs = make_pairs(tmp_path / "pairs24.jsonl", 24)
    whole = train_ranker(_small_run_config(trained, tmp_path / "whole", pairs, epochs=2, eval_every=4))
    assert whole.steps == 12 and [h["step"] for h in whole.history] == [4, 6, 8, 12]

    out = tmp_path / "crashed"
    real, calls = rt.sample_negatives, [0]

    def crash_at_step_10(*args: object, **kw: object) -> list[list[int]]:
        calls[0] += 1
        if calls[0] == 10:
            raise RuntimeError("simulated crash")
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(rt, "sample_negatives", crash_at_step_10)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_ranker(_small_run_config(trained, out, pairs, epochs=2, eval_every=4))
    monkeypatch.undo()
    assert sorted(p.name for p in out.glob("step-*")) == ["step-8"]
    state = torch.load(out / "step-8" / STATE_FILE, map_location="cpu", weights_only=False)
    assert (state["step"], state["epoch"], state["batches_done"]) == (8, 1, 2)

    resumed = train_ranker(_small_run_config(trained, out, pairs, epochs=2, eval_every=4, resume=str(out)))
    assert resumed.steps == 12 and [h["step"] for h in resumed.history] == [12]
    want, got = _train_losses(tmp_path / "whole"), _train_losses(out)
    assert sorted(got) == list(range(1, 13))
    assert [got[s] for s in range(9, 13)] == pytest.approx([want[s] for s in range(9, 13)], abs=1e-5)
    for name in ("model.safetensors", "ranker_head.pt"):
        assert (out / "best" / name).is_file()
    assert sorted(p.name for p in out.glob("step-*")) == ["step-12"]
    from codesearch_trainer.ranker_model import load_cross_encoder

    docs = ["def read_file(x):\n    return file.read(x)\n", "def sort_list(y): return list.sort(y)"]
    a = load_cross_encoder(str(tmp_path / "whole" / "best")).score("read the file", docs).numpy()
    b = load_cross_encoder(str(out / "best")).score("read the file", docs).numpy()
    assert np.allclose(a, b, atol=1e-5), (a, b)


@pytest.mark.parametrize("stop", [4, 6])  # mid-epoch, and exactly at the end of the first epoch
def test_a_run_stopped_by_max_steps_resumes_where_it_stopped(trained: dict[str, Path], tmp_path: Path,
                                                            stop: int) -> None:
    torch = pytest.importorskip("torch")
    from codesearch_trainer.ranker_train import train_ranker
    from codesearch_trainer.train import STATE_FILE

    pairs = make_pairs(tmp_path / "pairs24.jsonl", 24)  # 6 steps per epoch
    out = tmp_path / "run"
    first = train_ranker(_small_run_config(trained, out, pairs, epochs=2, max_steps=stop))
    state = torch.load(out / f"step-{stop}" / STATE_FILE, map_location="cpu", weights_only=False)
    assert (state["epoch"], state["batches_done"]) == (0, stop)
    assert state["best_step"] == stop  # no dev sets: the latest step is the best, in the state it saves too
    assert [h["epoch"] for h in first.history] == [1]
    resumed = train_ranker(_small_run_config(trained, out, pairs, epochs=2, eval_every=3, resume=str(out)))
    assert resumed.steps == 12
    assert [(h["step"], h["epoch"]) for h in resumed.history] == [(s, 1 + (s > 6)) for s in (6, 9, 12) if s > stop]
    assert sorted(_train_losses(out)) == list(range(1, 13))


def test_resume_keeps_the_best_checkpoint_chosen_before_it(trained: dict[str, Path], tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Dev MRRs scripted 0.9, 0.5 (first run), 0.7 (resumed): best stays the step-2 weights."""
    torch = pytest.importorskip("torch")
    import codesearch_trainer.ranker_train as rt
    from codesearch_trainer.ranker_train import train_ranker
    from codesearch_trainer.train import STATE_FILE
    from conftest import FakeEncoder

    monkeypatch.setattr(rt, "open_retriever", lambda spec, device=None, batch_size=64: FakeEncoder())
    scripted, real = iter([0.9, 0.5, 0.7]), rt.rerank_metrics

    def rerank_metrics(rset: object, scores: object, k: int) -> dict[str, float]:
        m = real(rset, scores, k)  # type: ignore[arg-type]
        return m if scores is None else {**m, "mrr": next(scripted)}  # None: the retriever alone

    monkeypatch.setattr(rt, "rerank_metrics", rerank_metrics)
    out = tmp_path / "run"
    kw = dict(dev=[str(make_dev(tmp_path / "dev", 6))], dev_rerank_k=3, eval_every=2)
    first = train_ranker(_small_run_config(trained, out, trained["pairs"], max_steps=4, **kw))
    assert (first.best_step, first.best_dev_mrr) == (2, 0.9)
    resumed = train_ranker(_small_run_config(trained, out, trained["pairs"], max_steps=6, resume=str(out), **kw))
    assert (resumed.best_step, resumed.best_dev_mrr, resumed.steps) == (2, 0.9, 6)
    assert [(h["step"], h["dev_mrr"], h["best_step"]) for h in resumed.history] == [(6, 0.7, 2)]
    saved = json.loads((out / "best" / "codesearch_ranker.json").read_text())["training"]
    assert (saved["step"], saved["dev_mrr"]) == (2, 0.9)
    assert sorted(p.name for p in out.glob("step-*")) == ["step-6"]
    state = torch.load(out / "step-6" / STATE_FILE, map_location="cpu", weights_only=False)
    assert (state["best_step"], state["best_mrr"]) == (2, 0.9)
    done = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert (done["type"], done["best_step"], done["best_dev_mrr"]) == ("done", 2, 0.9)


def test_export_parity_and_onnx_ranker_matches_torch(trained: dict[str, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner
    from codesearch_trainer.ranker_cli import main
    from codesearch_trainer.ranker_model import load_cross_encoder

    out = tmp_path / "exported"
    res = CliRunner().invoke(main, ["export-ranker", str(trained["best"]), str(out)])
    assert res.exit_code == 0, res.output
    manifest = ModelManifest.read(out)
    assert (manifest.kind, manifest.output, manifest.dimension) == ("ranker", "scores", 1)
    assert manifest.extra["query_max_length"] == 12 and manifest.extra["parity_max_abs_diff"] < 1e-3
    ranker = OnnxRanker.from_folder(out, device="cpu")
    assert ranker.provider == "CPUExecutionProvider"
    docs = ["def read_file(x):\n    return file.read(x)\n", "x", "def sort_list(y): return list.sort(y) " * 20]
    got = ranker.score("read the file", docs)
    want = load_cross_encoder(str(trained["best"])).score("read the file", docs).numpy()
    assert got.shape == (3,) and np.allclose(got, want, atol=1e-4)
    assert ranker.score("q", []).shape == (0,)
    hits = _hits([0.9, 0.8, 0.7, 0.6])
    new, info = rerank_hits(ranker, "read the file", hits, docs, k=3)
    assert info.k == 3 and info.skipped is None and new[3] == hits[3]
    assert [h.symbol for h in new[:3]] == [hits[i].symbol for i in np.argsort(-got, kind="stable")]
    # an encoder folder is refused as a ranker, and a non-ranker checkpoint cannot be exported
    res = CliRunner().invoke(main, ["export-ranker", str(trained["base"]), str(tmp_path / "x")])
    assert res.exit_code != 0 and "not a ranker checkpoint" in res.output


def test_cli_train_ranker_random_negatives(trained: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner
    from codesearch_trainer.ranker_cli import main

    out = tmp_path / "random"
    res = CliRunner().invoke(main, [
        "train-ranker", "--data", str(trained["pairs"]), "--retriever", str(trained["retriever"]), "--output",
        str(out), "--model", str(trained["base"]), "--negatives", "random", "--max-steps", "2", "--batch-size", "4",
        "--negatives-per-query", "3", "--max-length", "48", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (out / "best" / "ranker_head.pt").is_file() and not (out / "negatives.json").exists()
    config = next(json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()
                  if json.loads(line)["type"] == "config")
    assert config["config"]["negatives"] == "random" and config["group_size"] == 4
    res = CliRunner().invoke(main, ["train-ranker", "--data", str(trained["pairs"]), "--retriever",
                                    str(trained["retriever"]), "--output", str(tmp_path / "bad"),
                                    "--window-start", "0", "--model", str(trained["base"])])
    assert res.exit_code != 0 and "window-start" in res.output
