"""The ``codesearch`` command line: index, search, status, stop, clean."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from . import __version__
from .engine import (
    Engine,
    EngineConfig,
    EngineError,
    IndexReadOnly,
    IndexUnavailable,
    SearchResult,
    WorkspaceBusy,
    index_location,
    remove_index,
    workspace_root,
)
from .index.indexer import EmbedReport, Phase, SyncReport
from .index.indexer import Progress as IndexProgress
from .languages import UnknownLanguage, check_languages
from .query.rerank import DEFAULT_RERANK_K, MAX_RERANK_K, MIN_RERANK_K
from .service import background
from .walk.walker import DEFAULT_MAX_FILE_SIZE

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_FILES = 3
EXIT_MODEL = 4  # the model cannot be loaded ...
EXIT_STORAGE = 4  # ... or the index folder cannot be used: full disk, read-only, I/O error
EXIT_BUSY = 5
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
BUSY_HINT = "; `codesearch search` reads it as it is, or pass --wait"

err = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(message: str, code: int = EXIT_ERROR) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")
    sys.exit(code)


def model_options(func: Any) -> Any:
    func = click.option("--model", "model", default=None, envvar="CODESEARCH_MODEL",
                        help="Exported model folder, Hugging Face folder or id (default: the embedded "
                             "all-MiniLM-L6-v2).")(func)
    func = click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
                        envvar="CODESEARCH_DEVICE", show_default=True,
                        help="Execution provider; auto uses CUDA only when it truly loads.")(func)
    func = click.option("--exclude", multiple=True, help="Extra glob to leave out (repeatable).")(func)
    func = click.option("--max-file-size", type=int, default=DEFAULT_MAX_FILE_SIZE, show_default=True,
                        help="Skip files larger than this many bytes.")(func)
    return func


def open_engine(path: Path, model: str | None, device: str, exclude: tuple[str, ...], max_file_size: int,
                ranker: str | None = None, rerank_k: int = DEFAULT_RERANK_K) -> Engine:
    config = EngineConfig(model=model, device=device, exclude=exclude, max_file_size=max_file_size,
                          ranker=ranker, rerank_k=rerank_k)
    try:
        return Engine(path, config, on_message=lambda m: err.print(f"[yellow]{escape(m)}[/]"))
    except IndexUnavailable as exc:
        fail(str(exc), EXIT_STORAGE)
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
    raise AssertionError("unreachable")


def close_quietly(engine: Engine) -> None:
    """Close after a failure: what cannot be saved now is checked and repaired on the next open."""
    with suppress(EngineError):
        engine.close()


@contextmanager
def command_guard(engine: Engine) -> Iterator[None]:
    """Close the engine however a command ends; Ctrl-C and storage problems end it with a message
    (what was kept, what to do), never a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        interrupted(engine)
    except WorkspaceBusy:
        message = busy_message(engine.dir) + BUSY_HINT
        close_quietly(engine)
        fail(message, EXIT_BUSY)
    except IndexUnavailable as exc:
        close_quietly(engine)
        fail(str(exc), EXIT_STORAGE)
    except EngineError as exc:  # the rest: a model that cannot be loaded
        close_quietly(engine)
        fail(str(exc), EXIT_MODEL)
    else:
        try:
            engine.close()
        except IndexUnavailable as exc:
            fail(str(exc), EXIT_STORAGE)


def interrupted(engine: Engine) -> None:
    """Ctrl-C: every file chunked and every batch embedded so far is already committed; say so."""
    kept = ""
    with suppress(Exception):
        st = engine.status()
        kept = f"{st.files} files and {st.embedded} of {st.chunks} chunks embedded are kept in {st.index_dir}; "
    close_quietly(engine)
    err.print(f"[yellow]interrupted: {kept}run `codesearch index {engine.root}` to finish "
              "(it goes on from there; nothing is embedded twice)[/]")
    sys.exit(EXIT_INTERRUPTED)


class ProgressView:
    """Rich progress on stderr: files while chunking, then chunks/s and ETA while embedding."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 TextColumn("{task.completed}/{task.total}"), TextColumn("{task.fields[extra]}"),
                                 TimeElapsedColumn(), console=err, transient=True)
        self.tasks: dict[str, TaskID] = {}
        self.last_plain = 0.0
        self.plain = enabled and not err.is_terminal

    def __enter__(self) -> ProgressView:
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()

    def __call__(self, p: IndexProgress) -> None:
        if self.plain:
            now = time.monotonic()
            if now - self.last_plain > 5.0 and p.phase == Phase.EMBED:
                self.last_plain = now
                eta = f", ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
                err.print(f"embedding {p.embedded}/{p.to_embed} chunks ({p.rate:.1f}/s{eta})")
            return
        if not self.enabled or p.phase == Phase.SCAN:
            return
        if p.phase == Phase.CHUNK:
            self._task("chunk", "chunking files", p.files_total, p.files_done, "")
        elif p.phase == Phase.EMBED:
            eta = f"ETA {p.eta_s:.0f}s" if p.eta_s is not None else ""
            self._task("embed", "embedding chunks", p.to_embed, p.embedded, f"{p.rate:.1f} chunks/s {eta}")

    def _task(self, key: str, desc: str, total: int, done: int, extra: str) -> None:
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(desc, total=total, extra=extra)
        self.progress.update(self.tasks[key], total=total, completed=done, extra=extra)


def writer(engine: Engine, wait: bool) -> AbstractContextManager[None]:
    """The workspace write lock for a CLI command (waiting for another process with ``--wait``)."""
    return engine.writing(wait=wait, on_wait=lambda: err.print(
        "[yellow]another codesearch process is indexing this workspace; waiting for it…[/]"))


def run_update(engine: Engine, *, embed: bool, show_progress: bool, wait: bool = True,
               announce: bool = False) -> tuple[SyncReport, EmbedReport | None]:
    """Sync, then embed; ``announce`` says when the lexical index is complete (searchable now).
    WorkspaceBusy, IndexReadOnly and IndexUnavailable are the caller's."""
    clock = time.monotonic()

    def synced(_: SyncReport) -> None:
        status = engine.status()
        if status.files == 0:
            close_quietly(engine)
            fail(f"no indexable files under {engine.root} (check .gitignore, .codesearchignore and "
                 "--exclude)", EXIT_NO_FILES)
        if announce:
            todo = f"embedding {status.pending} chunks…" if status.pending and embed else "nothing to embed"
            err.print(f"searchable now: {status.files} files, {status.chunks} chunks in the lexical index "
                      f"({time.monotonic() - clock:.1f}s); {todo}")

    with writer(engine, wait), ProgressView(show_progress) as view:
        if not embed:
            sync = engine.sync(progress=view)
            synced(sync)
            return sync, None
        return engine.update(progress=view, on_synced=synced)


def check_model(engine: Engine) -> None:
    """Fail now (with the fix) when the model can never load or CUDA was asked for and cannot work."""
    try:
        engine.check_model()
    except EngineError as exc:
        close_quietly(engine)
        fail(str(exc), EXIT_MODEL)


def busy_message(index_dir: Path) -> str:
    """Who holds the write lock of this index, as far as can be told, and what to do about it."""
    found = background.inspect(index_dir)
    if found.running and found.state is not None:
        return (f"the background indexer ({found.state.describe()}) is indexing this workspace: "
                "`codesearch stop` ends it")
    return ("another codesearch process (an editor's language server, or another `codesearch index`) "
            "is keeping this index up to date")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="codesearch")
@click.option("-v", "--verbose", is_flag=True, help="Log details to stderr.")
def main(verbose: bool) -> None:
    """Semantic code search on your own machine."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@model_options
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--wait", is_flag=True, help="If another process is indexing this workspace, wait for it.")
def index(path: Path, model: str | None, device: str, exclude: tuple[str, ...], max_file_size: int,
          quiet: bool, wait: bool) -> None:
    """Index PATH (default: the current folder) and embed every chunk."""
    engine = open_engine(path, model, device, exclude, max_file_size)
    check_model(engine)
    start = time.monotonic()
    with command_guard(engine):
        sync, embedded = run_update(engine, embed=True, show_progress=not quiet, wait=wait, announce=True)
        status = engine.status()
    elapsed = time.monotonic() - start
    reasons: dict[str, int] = {}
    for _, reason in sync.skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    skipped = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items())) or "none"
    rate = f" ({embedded.embedded / embedded.elapsed_s:.1f} chunks/s)" if embedded and embedded.elapsed_s > 0 \
        and embedded.embedded else ""
    err.print(
        f"indexed {status.files} files, {status.chunks} chunks "
        f"(+{sync.added} ~{sync.updated} -{sync.removed} files; embedded {embedded.embedded if embedded else 0}"
        f"{rate}) in {elapsed:.1f}s\n"
        f"skipped: {skipped}; parse failures (indexed by line windows): {len(status.parse_failures)}\n"
        f"model: {escape(status.model)} on {status.provider} ({escape(status.provider_reason)})\n"
        f"index: {status.index_dir} ({status.index_bytes / 1e6:.1f} MB)"
    )
    for path_, message in sync.read_errors:
        err.print(f"[yellow]unreadable:[/] {escape(path_)}: {escape(message)}")


def print_hits(result: SearchResult, query: str, out: TextIO) -> None:
    console = Console(file=out, highlight=False, soft_wrap=True)
    if not result.hits:
        console.print(f"no results for {query!r}")
    for rank, hit in enumerate(result.hits, 1):
        name = hit.qualified_name or f"({hit.kind})"
        console.print(f"[bold]{rank:>2}.[/] [cyan]{hit.path}[/]:{hit.start_line}-{hit.end_line}  "
                      f"[bold]{name}[/]  [dim]{hit.language} {hit.score:.3f}[/]")
        if hit.snippet:
            console.print(f"      [dim]{hit.snippet}[/]", markup=True)


def _languages(names: tuple[str, ...]) -> tuple[str, ...]:
    try:
        return check_languages(names)
    except UnknownLanguage as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command()
@click.argument("query", required=False)
@click.option("--path", "path", type=click.Path(path_type=Path), default=".", show_default=True,
              help="The workspace to search.")
@click.option("-k", "--limit", "limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--lang", "languages", multiple=True, callback=lambda _ctx, _param, value: _languages(value),
              help="Only these languages (repeatable).")
@click.option("--glob", "path_glob", default=None, help="Only paths matching this glob, e.g. 'src/**/*.py'.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of results.")
@click.option("--wait", is_flag=True,
              help="Index and embed everything first (blocking), then answer.")
@click.option("--no-wait", is_flag=True, hidden=True, help="The default: answer at once from what is ready.")
@click.option("--batch", "batch", type=click.File("r"), default=None,
              help="JSON lines of {id, query}; writes one JSON line of {id, results} per query.")
@click.option("--mode", type=click.Choice(["fused", "dense", "lexical"]), default="fused", hidden=True)
@click.option("--ranker", default=None, envvar="CODESEARCH_RANKER",
              help="Exported ranker (cross-encoder) folder that re-orders the top results.")
@click.option("--rerank-k", type=click.IntRange(MIN_RERANK_K, MAX_RERANK_K), default=DEFAULT_RERANK_K,
              show_default=True, help="How many of the top results the ranker re-orders.")
@click.option("--shards", "shards_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Search the index shards in this folder (`codesearch shards build`) instead of --path.")
@model_options
def search(query: str | None, path: Path, limit: int, languages: tuple[str, ...], path_glob: str | None,
           as_json: bool, wait: bool, no_wait: bool, batch: TextIO | None, mode: str, ranker: str | None,
           rerank_k: int, shards_dir: Path | None, model: str | None, device: str, exclude: tuple[str, ...],
           max_file_size: int) -> None:
    """Search the workspace at --path (or the shards of --shards) for QUERY, in plain English or by symbol name.

    Answers at once from what is indexed (keywords, and the chunks embedded so far) and leaves a
    background indexer embedding the rest; --wait indexes everything first.
    """
    if wait and no_wait:
        fail("--wait and --no-wait contradict each other", EXIT_USAGE)
    if batch is None and (query is None or not query.strip()):
        fail("the query is empty: pass a QUERY, or --batch FILE", EXIT_USAGE)
    if shards_dir is not None:
        if batch is not None:
            fail("--batch does not work with --shards", EXIT_USAGE)
        assert query is not None
        search_shards(shards_dir, query, EngineConfig(model=model, device=device), limit=limit, languages=languages,
                      path_glob=path_glob, mode=mode, as_json=as_json)
        return
    request = SearchRequest(query or "", read_batch(batch) if batch is not None else None, limit, languages,
                            path_glob, mode, as_json)
    engine = open_engine(path, model, device, exclude, max_file_size, ranker=ranker, rerank_k=rerank_k)
    with command_guard(engine):
        answer = answer_search(engine, request, wait)
    if mode == "lexical":
        return
    if answer.quick is not None:
        for line in background.hand_over(engine, answer.quick, answer.pending, answer.dense_used):
            err.print(f"[yellow]{escape(line)}[/]")
    elif answer.pending:
        err.print(f"[yellow]{answer.pending} chunks are not embedded yet: results come from the lexical "
                  f"index and the chunks embedded so far ({answer.why_partial})[/]")


@dataclass(frozen=True)
class SearchRequest:
    query: str
    batch: list[tuple[Any, str]] | None  # (id, query) of --batch
    limit: int
    languages: tuple[str, ...]
    path_glob: str | None
    mode: str
    as_json: bool


@dataclass(frozen=True)
class SearchAnswer:
    pending: int  # chunks without a vector when the search ran
    dense_used: bool
    quick: background.QuickSync | None = None  # the short sync of a search that does not wait
    why_partial: str = ""  # with --wait: why chunks are still waiting for their vectors


def answer_search(engine: Engine, request: SearchRequest, wait: bool) -> SearchAnswer:
    """Bring the index up to date as far as the search may wait, then answer (a model that cannot load
    and storage problems end the command in command_guard)."""
    quick = None
    why_partial = ""
    if wait:
        why_partial = update_before_search(engine, embed=request.mode != "lexical",
                                           show_progress=not request.as_json)
    else:
        engine.check_model()
        quick = background.sync_briefly(engine)
    load_model = wait or engine.vectors_stored()  # nothing embedded yet: keywords only, no model load
    if request.batch is not None:
        pending = answer_batch(engine, request, load_model)
        return SearchAnswer(pending, load_model, quick, why_partial)
    result = engine.search(request.query, limit=request.limit, languages=request.languages,
                           path_glob=request.path_glob, mode=request.mode, load_model=load_model)
    print_result(result, request.query, request.as_json)
    return SearchAnswer(result.pending, result.dense_used, quick, why_partial)


def update_before_search(engine: Engine, *, embed: bool, show_progress: bool) -> str:
    """--wait: bring the index up to date if this process may; else say why results may be partial.
    Returns what the user can do about chunks still waiting for their vectors."""
    try:
        with engine.writing():
            run_update(engine, embed=embed, show_progress=show_progress)
    except WorkspaceBusy:
        err.print(f"[yellow]{escape(busy_message(engine.dir))}; answering from what it has stored so far[/]")
        return "another codesearch process is embedding them; search again later"
    except IndexReadOnly as exc:
        err.print(f"[yellow]{escape(str(exc))}; answering from the index as it is[/]")
        return "the index is read-only here"
    except IndexUnavailable as exc:
        err.print(f"[yellow]the index could not be updated: {escape(str(exc))}; answering from what is stored[/]")
        return "run `codesearch index` once the problem above is solved"
    return "run `codesearch index` to finish"


def print_result(result: SearchResult, query: str, as_json: bool) -> None:
    for note in result.notes:
        err.print(f"[yellow]{escape(note)}[/]")
    if as_json:
        sys.stdout.write(json.dumps([h.to_json() for h in result.hits], indent=2) + "\n")
        return
    print_hits(result, query, sys.stdout)
    parts = [name for name, used in (("semantic", result.dense_used), ("lexical", result.lexical_used)) if used]
    reranked = f", top {result.reranked} re-ranked" if result.reranked else ""
    err.print(f"[dim]answered by the {' + '.join(parts) or 'symbol'} index{reranked}[/]")


def read_batch(batch: TextIO) -> list[tuple[Any, str]]:
    queries: list[tuple[Any, str]] = []
    for n, line in enumerate(batch, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            queries.append((item["id"], str(item["query"])))
        except (json.JSONDecodeError, KeyError, TypeError):
            fail(f"{batch.name}:{n}: expected a JSON object with 'id' and 'query'", EXIT_USAGE)
    return queries


def answer_batch(engine: Engine, request: SearchRequest, load_model: bool) -> int:
    """Answer each query of --batch as a JSON line; returns the chunks still to embed."""
    pending = 0
    for qid, text in request.batch or []:
        result = engine.search(text, limit=request.limit, languages=request.languages, path_glob=request.path_glob,
                               mode=request.mode, load_model=load_model) if text.strip() else None
        hits = [h.to_json() for h in result.hits] if result else []
        record: dict[str, Any] = {"id": qid, "results": hits}
        if result is None:
            record["error"] = "empty query"
        else:
            pending = result.pending
            if result.notes:
                record["notes"] = result.notes
        sys.stdout.write(json.dumps(record) + "\n")
    return pending


def search_shards(folder: Path, query: str, config: EngineConfig, *, limit: int, languages: tuple[str, ...],
                  path_glob: str | None, mode: str, as_json: bool) -> None:
    from .shards.search import ShardSet

    try:
        shard_set = ShardSet.open(folder, config, on_message=lambda m: err.print(f"[yellow]{escape(m)}[/]"))
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    try:
        for problem in shard_set.problems:
            err.print(f"[yellow]{escape(problem)}[/]")
        result = shard_set.search(query, limit=limit, languages=languages, path_glob=path_glob, mode=mode)
    except EngineError as exc:
        fail(str(exc), EXIT_ERROR)
        return
    finally:
        shard_set.close()
    for problem in result.errors:
        err.print(f"[yellow]{escape(problem)}[/]")
    if result.dense_skipped:
        err.print(f"[yellow]keyword search only: {escape(result.dense_skipped)}[/]")
    if as_json:
        sys.stdout.write(json.dumps([h.to_json() for h in result.hits], indent=2) + "\n")
        return
    console = Console(file=sys.stdout, highlight=False, soft_wrap=True)
    if not result.hits:
        console.print(f"no results for {query!r}")
    for rank, found in enumerate(result.hits, 1):
        hit = found.hit
        where = f"[magenta]{escape(found.repo)}[/]:[cyan]{escape(hit.path)}[/]:{hit.start_line}-{hit.end_line}"
        console.print(f"[bold]{rank:>2}.[/] {where}  [bold]{escape(hit.qualified_name or f'({hit.kind})')}[/]  "
                      f"[dim]{hit.language} {hit.score:.3f}[/]")
        if hit.snippet:
            console.print(f"      [dim]{escape(hit.snippet)}[/]")
    err.print(f"[dim]searched {result.searched} shard(s) in {escape(str(folder))}[/]")


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option("--json", "as_json", is_flag=True)
@model_options
def status(path: Path, as_json: bool, model: str | None, device: str, exclude: tuple[str, ...],
           max_file_size: int) -> None:
    """Show what is indexed for PATH: files, chunks, model, provider, size, stale files."""
    try:
        folder = index_location(workspace_root(path))
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    if not (folder / "index.db").is_file():
        if as_json:
            sys.stdout.write(json.dumps({"root": str(path.resolve()), "index_dir": str(folder), "indexed": False},
                                        indent=2) + "\n")
        else:
            click.echo(f"{path.resolve()} is not indexed yet: `codesearch index {path}` builds its index "
                       f"(in {folder})")
        return
    engine = open_engine(path, model, device, exclude, max_file_size)
    with command_guard(engine):
        try:
            engine.encoder  # noqa: B018 - loads the model so provider and pending are exact
        except IndexUnavailable:
            raise
        except EngineError as exc:
            err.print(f"[yellow]model not loaded: {escape(str(exc))}[/]")
        st = engine.status()
        stale = engine.stale_files()
    found = background.inspect(engine.dir)
    data = asdict(st)
    data["stale_files"] = stale
    data["indexed"] = True
    data["background"] = {"state": found.liveness.value, **(asdict(found.state) if found.state else {}),
                          "log": str(engine.dir / background.LOG_FILE)}
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    click.echo(f"workspace: {st.root}\nindex:     {st.index_dir} ({st.index_bytes / 1e6:.1f} MB)\n"
               f"files:     {st.files} ({len(st.parse_failures)} indexed by line windows after parse errors)\n"
               f"chunks:    {st.chunks} ({st.embedded} embedded, {st.pending} pending)\n"
               f"model:     {st.model or '-'} [{st.model_key or '-'}]\n"
               f"provider:  {st.provider or '-'} ({st.provider_reason or '-'})\n"
               f"indexer:   {describe_background(found, engine.dir)}\n"
               f"stale:     {len(stale)} file(s) changed since the last index"
               + "".join(f"\n  {p}" for p in stale[:20]))


def stop_background(path: Path) -> None:
    """Stop the background indexer of a workspace before its index is removed."""
    with suppress(EngineError):
        folder = index_location(workspace_root(path))
        if background.inspect(folder).running:
            background.stop(folder)


def describe_background(found: background.Inspection, index_dir: Path) -> str:
    state = found.state
    if state is None:
        return "no background indexer has run here"
    log_file = index_dir / background.LOG_FILE
    if found.liveness == background.Liveness.RUNNING:
        return f"running in the background ({state.describe()}); `codesearch stop` ends it"
    if found.liveness == background.Liveness.CRASHED:
        return f"the background indexer (pid {state.pid}) stopped before finishing; log: {log_file}"
    ago = time.time() - state.updated
    return f"last background run {state.phase} {background.format_eta(ago)} ago: {state.message}"


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds to wait for it to exit.")
def stop(path: Path, timeout: float) -> None:
    """Stop the background indexer of PATH; what it embedded is kept, and a search resumes it."""
    try:
        index_dir = index_location(workspace_root(path))
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    found = background.inspect(index_dir)
    if found.liveness == background.Liveness.CRASHED and found.state is not None:
        background.write_state(index_dir, replace(found.state, phase="failed", message="stopped unexpectedly"))
        err.print(f"the background indexer (pid {found.state.pid}) had already stopped before finishing; log: "
                  f"{index_dir / background.LOG_FILE}")
        return
    if not found.running or found.state is None:
        err.print(f"no background indexer is running for {path.resolve()}")
        return
    after = background.stop(index_dir, timeout)
    if after.running:
        fail(f"the background indexer (pid {found.state.pid}) did not stop within {timeout:.0f}s", EXIT_ERROR)
    message = after.state.message if after.state is not None else ""
    err.print(f"stopped the background indexer (pid {found.state.pid}){': ' + message if message else ''}")


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
def clean(path: Path) -> None:
    """Delete the index of PATH (it lives in the user cache, never in the workspace); stops its background indexer."""
    stop_background(path)
    try:
        folder = remove_index(path)
    except WorkspaceBusy:
        fail(busy_message(index_location(path)) + "; stop it first", EXIT_ERROR)
        return
    except IndexUnavailable as exc:
        fail(str(exc), EXIT_STORAGE)
        return
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    if folder is None:
        err.print(f"nothing to remove: {path.resolve()} has no index")
    else:
        err.print(f"removed {folder}")


@main.group()
def shards() -> None:
    """Index shards: one index per repository, built on a Ray cluster, searched together (`search --shards`)."""


@shards.command("build")
@click.argument("repos", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The shards folder: one shard per repository and shards.json.")
@click.option("--ray-address", default="local", envvar="CODESEARCH_RAY_ADDRESS", show_default=True,
              help="'local' starts Ray on this machine; else a cluster's address (auto, host:port, ray://host:port).")
@click.option("--num-cpus", type=click.IntRange(1), default=None, help="With 'local': the CPUs Ray may use.")
@click.option("--max-actors", type=click.IntRange(1), default=None, help="At most this many embedders.")
@click.option("--force", is_flag=True, help="Rebuild every shard, changed or not.")
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
@model_options
def shards_build(repos: tuple[Path, ...], out: Path, ray_address: str, num_cpus: int | None, max_actors: int | None,
                 force: bool, as_json: bool, model: str | None, device: str, exclude: tuple[str, ...],
                 max_file_size: int) -> None:
    """Build or refresh one shard per REPO in --out; unchanged repositories are skipped."""
    try:
        from .shards.ray_build import BuildError, RayOptions, build_shards
    except ModuleNotFoundError as exc:
        fail(f"{exc.name} is missing: install the scale extra (pip install 'codesearch[scale]')", EXIT_USAGE)
        return
    from .shards.repo_shard import BuildOptions
    from .shards.report import describe_outcome, report_json, summarize

    options = BuildOptions(model=model, exclude=exclude, max_file_size=max_file_size, force=force)
    try:
        report = build_shards(out, repos, options, device=device, max_actors=max_actors,
                              ray_options=RayOptions(address=ray_address, num_cpus=num_cpus),
                              on_outcome=lambda o: err.print(describe_outcome(o)))
    except BuildError as exc:
        fail(str(exc), EXIT_MODEL)
        return
    err.print(summarize(report))
    if as_json:
        sys.stdout.write(json.dumps(report_json(report), indent=2) + "\n")
    if report.of("failed"):
        sys.exit(EXIT_ERROR)


@shards.command("list")
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True)
def shards_list(folder: Path, as_json: bool) -> None:
    """What the shards folder FOLDER holds: one line per repository."""
    from .shards.manifest import ManifestError, ShardsManifest

    try:
        manifest = ShardsManifest.read(folder)
    except ManifestError as exc:
        fail(str(exc), EXIT_USAGE)
        return
    if as_json:
        sys.stdout.write(json.dumps([r.to_json() for r in manifest.records], indent=2) + "\n")
        return
    for r in manifest.records:
        state = "ok" if r.ok else f"FAILED: {r.error}"
        click.echo(f"{r.repo}\t{r.files} files\t{r.chunks} chunks\t{r.content_kind}:{r.content_hash[:12]}\t"
                   f"{r.built_at}\t{state}")


if __name__ == "__main__":
    main()
