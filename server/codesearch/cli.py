"""The ``codesearch`` command line: index, search, status, stop, clean."""

from __future__ import annotations

import json
import logging
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from . import __version__
from .engine import Engine, EngineConfig, EngineError, SearchResult, WorkspaceBusy
from .index.indexer import EmbedReport, Phase, SyncReport
from .index.indexer import Progress as IndexProgress
from .paths import workspace_dir
from .query.rerank import DEFAULT_RERANK_K
from .service import background
from .walk.walker import DEFAULT_MAX_FILE_SIZE

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_FILES = 3
EXIT_MODEL = 4
EXIT_BUSY = 5

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
    except EngineError as exc:
        fail(str(exc), EXIT_USAGE)
        raise  # unreachable


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
    """Sync, then embed; ``announce`` says when the lexical index is complete (searchable now)."""
    clock = time.monotonic()

    def synced(_: SyncReport) -> None:
        status = engine.status()
        if status.files == 0:
            fail(f"no indexable files under {engine.root} (check .gitignore, .codesearchignore and "
                 "--exclude)", EXIT_NO_FILES)
        if announce:
            todo = f"embedding {status.pending} chunks…" if status.pending and embed else "nothing to embed"
            err.print(f"searchable now: {status.files} files, {status.chunks} chunks in the lexical index "
                      f"({time.monotonic() - clock:.1f}s); {todo}")

    try:
        with writer(engine, wait), ProgressView(show_progress) as view:
            if not embed:
                sync = engine.sync(progress=view)
                synced(sync)
                return sync, None
            try:
                return engine.update(progress=view, on_synced=synced)
            except EngineError as exc:
                fail(str(exc), EXIT_MODEL)
                raise
    except WorkspaceBusy:
        fail(busy_message(engine) + "; `codesearch search` reads the index as it is, or pass --wait", EXIT_BUSY)
        raise


def busy_message(engine: Engine) -> str:
    found = background.inspect(engine.dir)
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
    try:
        engine.check_model()
    except EngineError as exc:
        engine.close()
        fail(str(exc), EXIT_MODEL)
    start = time.monotonic()
    sync, embedded = run_update(engine, embed=True, show_progress=not quiet, wait=wait, announce=True)
    status = engine.status()
    engine.close()
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


@main.command()
@click.argument("query", required=False)
@click.option("--path", "path", type=click.Path(path_type=Path), default=".", show_default=True,
              help="The workspace to search.")
@click.option("-k", "--limit", "limit", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--lang", "languages", multiple=True, help="Only these languages (repeatable).")
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
@click.option("--rerank-k", type=click.IntRange(2, 200), default=DEFAULT_RERANK_K, show_default=True,
              help="How many of the top results the ranker re-orders.")
@model_options
def search(query: str | None, path: Path, limit: int, languages: tuple[str, ...], path_glob: str | None,
           as_json: bool, wait: bool, no_wait: bool, batch: TextIO | None, mode: str, ranker: str | None,
           rerank_k: int, model: str | None, device: str, exclude: tuple[str, ...], max_file_size: int) -> None:
    """Search the workspace at --path for QUERY, in plain English or by symbol name.

    Answers at once from what is indexed (keywords, and the chunks embedded so far) and leaves a
    background indexer embedding the rest; --wait indexes everything first.
    """
    if wait and no_wait:
        fail("--wait and --no-wait contradict each other", EXIT_USAGE)
    queries = read_batch(batch) if batch is not None else []
    if batch is None and (query is None or not query.strip()):
        fail("the query is empty: pass a QUERY, or --batch FILE", EXIT_USAGE)
    engine = open_engine(path, model, device, exclude, max_file_size, ranker=ranker, rerank_k=rerank_k)
    quick: background.QuickSync | None = None
    try:
        if wait:
            try:
                with engine.writing():
                    run_update(engine, embed=mode != "lexical", show_progress=not as_json)
            except WorkspaceBusy:
                err.print(f"[yellow]{escape(busy_message(engine))}; answering from what it has stored so far[/]")
        else:
            engine.check_model()
            quick = background.sync_briefly(engine)
        load_model = wait or engine.vectors_stored()  # nothing embedded yet: keywords only, no model load
        if batch is not None:
            pending = answer_batch(engine, queries, limit, languages, path_glob, mode, load_model)
            dense_used = load_model
        else:
            assert query is not None
            result = engine.search(query, limit=limit, languages=languages, path_glob=path_glob, mode=mode,
                                   load_model=load_model)
            print_result(result, query, as_json)
            pending, dense_used = result.pending, result.dense_used
    except EngineError as exc:
        fail(str(exc), EXIT_MODEL)
        return
    finally:
        engine.close()
    if mode == "lexical":
        return
    if quick is not None:
        for line in background.hand_over(engine, quick, pending, dense_used):
            err.print(f"[yellow]{escape(line)}[/]")
    elif pending:
        err.print(f"[yellow]{pending} chunks are not embedded yet: results come from the lexical "
                  "index and the chunks embedded so far[/]")


def print_result(result: SearchResult, query: str, as_json: bool) -> None:
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


def answer_batch(engine: Engine, queries: list[tuple[Any, str]], limit: int, languages: tuple[str, ...],
                 path_glob: str | None, mode: str, load_model: bool) -> int:
    """Answer each query as a JSON line; returns the chunks still to embed."""
    pending = 0
    for qid, text in queries:
        result = engine.search(text, limit=limit, languages=languages, path_glob=path_glob, mode=mode,
                               load_model=load_model) if text.strip() else None
        hits = [h.to_json() for h in result.hits] if result else []
        record: dict[str, Any] = {"id": qid, "results": hits}
        if result is None:
            record["error"] = "empty query"
        else:
            pending = result.pending
        sys.stdout.write(json.dumps(record) + "\n")
    return pending


@main.command()
@click.argument("path", type=click.Path(path_type=Path), default=".")
@click.option("--json", "as_json", is_flag=True)
@model_options
def status(path: Path, as_json: bool, model: str | None, device: str, exclude: tuple[str, ...],
           max_file_size: int) -> None:
    """Show what is indexed for PATH: files, chunks, model, provider, size, stale files."""
    engine = open_engine(path, model, device, exclude, max_file_size)
    try:
        try:
            engine.encoder  # noqa: B018 - loads the model so provider and pending are exact
        except EngineError as exc:
            err.print(f"[yellow]model not loaded: {escape(str(exc))}[/]")
        st = engine.status()
        stale = engine.stale_files()
    finally:
        engine.close()
    found = background.inspect(engine.dir)
    data = asdict(st)
    data["stale_files"] = stale
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
    if not path.is_dir():
        fail(f"{path} is not a folder", EXIT_USAGE)
    index_dir = workspace_dir(path)
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
    engine = open_engine(path, None, "cpu", (), DEFAULT_MAX_FILE_SIZE)
    folder = engine.dir
    if background.inspect(folder).running:
        background.stop(folder)
    try:
        with engine.writing():
            engine.clean()
    except WorkspaceBusy:
        engine.close()
        fail(busy_message(engine) + "; stop it first", EXIT_ERROR)
    err.print(f"removed {folder}")


if __name__ == "__main__":
    main()
