"""The settings are defined once (server/codesearch/lsp/settings.py); every copy must agree with it.

Compared: the VS Code extension's package.json (keys, types, ranges, defaults, descriptions), the
keys its config.ts sends, the settings tables of docs/lsp.md and extension/README.md, and the CLI's
defaults. A failure prints what to change (``scripts/sync_settings.py`` rewrites the generated parts).
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType

import click
from codesearch.cli import search
from codesearch.lsp.settings import KEYS, SPECS, Settings, parse_settings

REPO = Path(__file__).resolve().parent.parent
CONFIG_TS = REPO / "extension" / "src" / "config.ts"


def sync_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sync_settings", REPO / "scripts" / "sync_settings.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ts_string_array(source: str, name: str) -> list[str]:
    match = re.search(rf"export const {name} = \[([^\]]*)\]", source)
    assert match, f"{name} not found in {CONFIG_TS}"
    return re.findall(r"'([^']*)'", match.group(1))


def test_generated_settings_are_up_to_date() -> None:
    sync = sync_script()
    diffs = sync.differences()
    report = "\n".join(sync.unified_diff(path, old, new) for path, old, new in diffs)
    assert not diffs, f"out of date with server/codesearch/lsp/settings.py; run " \
                      f"`.venv/bin/python scripts/sync_settings.py` to apply:\n{report}"


def test_package_json_matches_the_server_settings() -> None:
    properties = json.loads((REPO / "extension" / "package.json").read_text())["contributes"]["configuration"][
        "properties"]
    for spec in SPECS:
        entry = properties[f"codesearch.{spec.key}"]
        assert entry["default"] == Settings().to_json()[spec.key], spec.key
        assert parse_settings({spec.key: entry["default"]}) == (Settings(), []), spec.key
        assert entry["markdownDescription"] == spec.description, spec.key
        for word in ("type", "enum", "minimum", "maximum", "items"):
            assert entry.get(word) == spec.schema.get(word), (spec.key, word)
    own = {k.removeprefix("codesearch.") for k in properties} - set(KEYS)
    launch = ts_string_array(CONFIG_TS.read_text(), "LAUNCH_KEYS")
    assert own == {*launch, "trace.server"}, "package.json settings that are neither the server's nor the extension's"


def test_the_extension_sends_the_server_keys_and_has_no_defaults_of_its_own() -> None:
    source = CONFIG_TS.read_text()
    assert tuple(ts_string_array(source, "LIVE_KEYS")) == KEYS
    # The server's defaults apply to whatever the user did not set; the extension keeps no copy.
    assert "DEFAULT" not in source and "1024" not in source


def test_docs_tables_list_every_setting_with_its_default() -> None:
    defaults = Settings().to_json()
    for doc, prefix in ((REPO / "docs" / "lsp.md", ""), (REPO / "extension" / "README.md", "codesearch.")):
        rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([\w.]+)` \| `([^`]*)`", doc.read_text(), re.M)}
        for key in KEYS:
            assert json.loads(rows[f"{prefix}{key}"]) == defaults[key], (doc.name, key)


def test_cli_defaults_are_the_server_defaults() -> None:
    options = {p.name: p for p in search.params if isinstance(p, click.Option)}
    defaults = Settings()
    assert options["device"].default == defaults.device
    assert options["max_file_size"].default == defaults.max_file_size
    assert options["rerank_k"].default == defaults.rerank_k
    rerank_type = options["rerank_k"].type
    assert isinstance(rerank_type, click.IntRange)
    rerank_schema = next(s.schema for s in SPECS if s.key == "rerankK")
    assert (rerank_type.min, rerank_type.max) == (rerank_schema["minimum"], rerank_schema["maximum"])
    device_type = options["device"].type
    assert isinstance(device_type, click.Choice)
    assert list(device_type.choices) == next(s.schema for s in SPECS if s.key == "device")["enum"]
