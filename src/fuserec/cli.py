"""The ``fuserec`` command line."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

app = typer.Typer(help="fuserec: multimodal recommendation from text, images and audio.",
                  no_args_is_help=True, add_completion=False)
console = Console()


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user fixes in their data into one red line and exit code 2.

    Wraps the loading step of a command: an unusable catalog (:class:`CatalogError`: a table
    without its id column, no valid items...), a refused pickle (:class:`UnsafePickleError`) or
    a missing dataset file is printed as ``error: <message naming the file>`` without a
    traceback. Any other exception is a bug and keeps its traceback. Used by ``validate``,
    ``encode`` and ``evaluate``; meant for every command that loads user data.
    """
    from fuserec.data.adapters.safe_pickle import UnsafePickleError
    from fuserec.data.validate import CatalogError

    try:
        yield
    except (CatalogError, UnsafePickleError, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None


_MODEL_HELP = ("Candidate model (repeatable), or 'auto' for every candidate (content-cosine, "
               "the collaborative and content-aware learned models, blend); the best on "
               "validation is served. See `fuserec models`.")


_LLM_HELP = ("LLM for describe: smollm2 (SmolLM2-135M on CTranslate2, default), gemma3-270m "
             "(Gemma 3 270M, Gemma terms apply), transformers (slow reference), llama-cpp, "
             "openai (FUSEREC_LLM_BASE_URL), or 'none' for template texts only.")


def _models(names: list[str]) -> tuple[str, ...]:
    """The candidates ``--model`` names ('auto' expands to the default set)."""
    from fuserec.evaluate.selection import AUTO_CANDIDATES
    from fuserec.models import MODELS

    out: list[str] = []
    for name in names:
        for n in AUTO_CANDIDATES if name == "auto" else (name,):
            if n not in MODELS:
                raise typer.BadParameter(f"unknown model {n!r}; known: "
                                         f"{', '.join(MODELS.names())} or auto")
            if n not in out:
                out.append(n)
    return tuple(out)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"),
                             help="Folder for the catalog, report and artifacts."),
    items: int = typer.Option(300, min=20, help="Items in the generated catalog."),
    users: int = typer.Option(200, min=10, help="Users in the generated catalog."),
    seed: int = typer.Option(7, help="Seed of the generated catalog."),
    inject_errors: bool = typer.Option(True, help="Add a few broken records to show validation."),
    cache: Path | None = typer.Option(None, help="Embedding cache folder (default OUT/cache)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    describe: bool = typer.Option(True, help="Run describe + the consistency router."),
    llm: str = typer.Option("smollm2", help=_LLM_HELP),
    llm_budget: float = typer.Option(
        240.0, min=0.0, help="Seconds the LLM may spend writing item descriptions and user "
        "profiles; what it does not reach gets the template text (the report says how many)."),
    model: list[str] = typer.Option(["auto"], help=_MODEL_HELP),
) -> None:
    """Generate the demo catalog, then validate, encode, fuse, train and select models, and
    evaluate them; the best on validation is written into the artifacts for serving."""
    from fuserec.data.synthetic import DemoCatalogSpec
    from fuserec.pipeline import PipelineConfig, run_demo
    from fuserec.pipeline.describe import DescribeConfig

    spec = DemoCatalogSpec(n_items=items, n_users=users, seed=seed, inject_errors=inject_errors)
    describe_config = DescribeConfig(llm=None if llm == "none" else llm,
                                     llm_budget_s=llm_budget) if describe else None
    with user_errors():
        results = run_demo(out, spec, PipelineConfig(cache_dir=cache, progress=progress,
                                                     describe=describe_config,
                                                     models=_models(model)), console)
    if not results["fused_beats_every_view"]:
        console.print("[yellow]note: on this catalog the fused view did not beat every view")


@app.command()
def run(
    catalog: Path = typer.Argument(..., exists=True, file_okay=False,
                                   help="Catalog folder with items.csv|jsonl|parquet and media."),
    out: Path = typer.Option(Path("runs/catalog"), help="Folder for the report and artifacts."),
    cache: Path | None = typer.Option(None, help="Embedding cache folder (default OUT/cache)."),
    test_fraction: float = typer.Option(0.2, min=0.0, max=0.9, help="Held-out share per user."),
    seed: int = typer.Option(0, help="Seed of the split."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    describe: bool = typer.Option(True, help="Run describe + the consistency router."),
    llm: str = typer.Option("smollm2", help=_LLM_HELP),
    llm_budget: float = typer.Option(
        600.0, min=0.0, help="Seconds the LLM may spend writing item descriptions and user "
        "profiles; what it does not reach gets the template text (the report says how many)."),
    model: list[str] = typer.Option(["auto"], help=_MODEL_HELP),
    validation_fraction: float = typer.Option(
        0.1, min=0.01, max=0.5, help="Share of each user's interactions held out for early "
        "stopping and model selection (random split)."),
    model_seconds: float = typer.Option(
        300.0, min=1.0, help="Training budget of each learned model in seconds (it keeps its "
        "best epoch on validation so far)."),
    train_budget: float = typer.Option(
        150.0, min=0.0, help="Seconds for all gradient-trained candidates together, shared "
        "equally as they start (closed-form models do not count); 0 for no shared budget."),
) -> None:
    """Run the pipeline on your own catalog folder: validate, encode, train the candidate
    models, select the best on validation, report every candidate on test, write artifacts.

    Interactions with a ``split`` column (train / validation / test) are split as given."""
    from fuserec.pipeline import PipelineConfig, run_pipeline
    from fuserec.pipeline.describe import DescribeConfig

    describe_config = DescribeConfig(llm=None if llm == "none" else llm,
                                     llm_budget_s=llm_budget) if describe else None
    config = PipelineConfig(test_fraction=test_fraction, seed=seed, cache_dir=cache,
                            progress=progress, describe=describe_config, models=_models(model),
                            validation_fraction=validation_fraction,
                            model_seconds=model_seconds, train_budget=train_budget or None)
    with user_errors():
        run_pipeline(catalog, out, config, console)


@app.command("describe")
def describe_cmd(
    artifacts: Path = typer.Option(..., exists=True, file_okay=False,
                                   help="Artifact folder of a run, e.g. runs/demo/artifacts."),
    item: list[str] = typer.Option([], help="Item id to show (repeatable)."),
    user: list[str] = typer.Option([], help="User id whose taste profile to show (repeatable)."),
) -> None:
    """Print every text view of items (and users) and which path the router chose."""
    from fuserec.pipeline.describe import show_described

    if not show_described(artifacts, item, user, console):
        raise typer.Exit(1)


@app.command()
def validate(
    catalog: Path = typer.Argument(..., exists=True, file_okay=False, help="Catalog folder."),
    report: Path | None = typer.Option(None, help="Write the report as JSON here."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Check every record and media file of a catalog; print what was rejected and why."""
    from fuserec.data.loaders import load_catalog
    from fuserec.data.validate import CatalogError

    with user_errors():
        try:
            _, result = load_catalog(catalog, progress=progress)
        except CatalogError as exc:
            if exc.report is not None:  # e.g. every item rejected: show why before the error
                exc.report.print(console)
            raise
    result.print(console)
    if report:
        result.write_json(report)
        console.print(f"wrote {report}")


@app.command()
def encoders() -> None:
    """List the registered encoders."""
    from fuserec.encode import DEFAULT_ENCODERS, ENCODERS

    defaults = {v: k for k, v in DEFAULT_ENCODERS.items()}
    for name in ENCODERS.names():
        mark = f"  (default for {defaults[name]})" if name in defaults else ""
        console.print(f"{name}{mark}")


def _engine(engine: str, address: str | None, workers: int | None, cpus_per_worker: float,
            gpus_per_worker: float):
    """Build the engine the ``--engine`` options name (Ray options only for Ray)."""
    from fuserec.engines import get_engine

    if engine == "ray":
        return get_engine("ray", address=address, workers=workers,
                          cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker)
    if address is not None or workers is not None:
        raise typer.BadParameter("--address and --workers need --engine ray")
    return get_engine(engine)


_ENGINE_HELP = "Where to run: local (in-process, the default) or ray."
#: the GIL switch interval of `fuserec serve` (see serve()); Python's default is 5 ms
SERVE_SWITCH_INTERVAL_S = 0.0005
_ADDRESS_HELP = ("Ray cluster to join: 'auto' (a `ray start` node here), 'HOST:6379' or "
                 "'ray://HOST:10001'. Unset: start a local Ray.")


@app.command()
def encode(
    catalog: Path = typer.Argument(..., exists=True, file_okay=False, help="Catalog folder."),
    cache: Path = typer.Option(..., help="Embedding cache folder (content hash + encoder "
                                         "version; shared by every engine)."),
    out: Path | None = typer.Option(None, help="Also write embeddings.safetensors, "
                                               "<table>_ids.parquet and encode.json here."),
    engine: str = typer.Option("local", help=_ENGINE_HELP),
    address: str | None = typer.Option(None, help=_ADDRESS_HELP),
    workers: int | None = typer.Option(None, min=1, help="Ray actors (default: cluster CPUs "
                                                         "/ --cpus-per-worker)."),
    cpus_per_worker: float = typer.Option(1.0, min=0.1, help="CPUs per Ray actor."),
    gpus_per_worker: float = typer.Option(0.0, min=0.0, help="GPUs per Ray actor."),
    modality: list[str] = typer.Option(["text", "image", "audio"],
                                       help="Modalities to encode. Repeatable."),
    describe: bool = typer.Option(False, help="Also describe images and audio as text "
                                              "(labels, transcripts, sound words) on the "
                                              "engine, into CACHE/describe."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Encode (and optionally describe) a catalog's media into the caches, locally or on Ray."""
    from fuserec.data.loaders import load_catalog
    from fuserec.encode import DEFAULT_ENCODERS, EmbeddingCache
    from fuserec.engines import EncoderSpec
    from fuserec.engines.jobs import encode_job

    unknown = sorted(set(modality) - set(DEFAULT_ENCODERS))
    if unknown:
        raise typer.BadParameter(f"unknown modality {unknown[0]!r}")
    with user_errors():
        cat, report = load_catalog(catalog, progress=progress)
    report.print(console)
    specs = {m: EncoderSpec(DEFAULT_ENCODERS[m]) for m in modality}
    with _engine(engine, address, workers, cpus_per_worker, gpus_per_worker) as eng:
        summary = encode_job(eng, cat, specs, EmbeddingCache(cache), out, progress)
        if describe:
            _describe_on(eng, cat, [m for m in modality if m in ("image", "audio")], cache)
    for table, views in summary["counts"].items():
        for m, c in views.items():
            console.print(f"{table} {m}: {c['present']}/{c['records']} encoded, "
                          f"{c['errors']} errors")
    console.print(f"{summary['engine']}: {summary['seconds']:.1f} s; cache {cache}"
                  + (f"; outputs in {out}" if out else ""))


def _describe_on(eng, cat, modalities: list[str], cache: Path) -> None:
    """Describe every image/audio file of items and users on ``eng`` into CACHE/describe."""
    from fuserec.data.schema import AUDIO, IMAGES
    from fuserec.describe import DEFAULT_DESCRIBERS, TextCache
    from fuserec.describe.catalog import describe_media_column
    from fuserec.engines import DescriberSpec

    text_cache = TextCache(cache / "describe")
    for m in modalities:
        column = {"image": IMAGES, "audio": AUDIO}[m]
        describer = eng.describer(DescriberSpec(DEFAULT_DESCRIBERS[m]))
        for table, frame in (("items", cat.items), ("users", cat.users)):
            if column not in frame or not frame[column].map(len).any():
                continue
            texts, _, errors = describe_media_column(frame, cat.root, column, describer,
                                                     text_cache)
            done = sum(bool(t) for t in texts)
            have = int(frame[column].map(len).gt(0).sum())
            console.print(f"{table} {m}: {done}/{have} described ({len(texts) - have} without "
                          f"one), {len(errors)} errors")
            for rid, reason in errors[:5]:
                console.print(f"  [yellow]{rid}[/]: {reason}")


@app.command("recommend-all")
def recommend_all(
    artifacts: Path = typer.Option(..., exists=True, file_okay=False,
                                   help="Artifact folder of a run, e.g. runs/demo/artifacts."),
    out: Path = typer.Option(Path("recommendations.parquet"), help="Parquet file to write."),
    k: int = typer.Option(10, min=1, help="Items per user."),
    engine: str = typer.Option("local", help=_ENGINE_HELP),
    address: str | None = typer.Option(None, help=_ADDRESS_HELP),
    workers: int | None = typer.Option(None, min=1, help="Ray actors."),
    batch_size: int = typer.Option(1024, min=1, help="Users per block."),
) -> None:
    """Batch scoring: top-k for every user of a saved model, locally or on Ray."""
    from fuserec.artifacts import load_artifacts
    from fuserec.engines.jobs import recommend_job

    art = load_artifacts(artifacts)
    with _engine(engine, address, workers, 1.0, 0.0) as eng:
        summary = recommend_job(eng, art.model, art.users["id"].astype(str).tolist(),
                                art.items["id"].astype(str).tolist(), k, out,
                                batch_size=batch_size)
    console.print(f"{summary['engine']}: {summary['users']} users x {k} in "
                  f"{summary['seconds']:.2f} s -> {summary['out']}")


@app.command()
def serve(
    artifacts: Path = typer.Option(..., exists=True, file_okay=False,
                                   help="Artifact folder of a run, e.g. runs/demo/artifacts."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, min=1, max=65535, help="Port to listen on."),
    token: str | None = typer.Option(None, envvar="FUSEREC_TOKEN",
                                     help="Bearer token required by write endpoints "
                                          "(feedback, new items) and, unless --public-reads, "
                                          "by the user endpoints."),
    public_reads: bool | None = typer.Option(
        None, "--public-reads/--no-public-reads",
        help="Let anyone read users, their histories and their recommendations even when the "
        "server has a token (default: no, they need the token). Also the explicit consent "
        "needed to serve on a non-loopback host without a token."),
    index: str = typer.Option("faiss", help="Index: faiss (default), usearch or exact."),
    journal: Path | None = typer.Option(
        None, dir_okay=False, help="Record feedback and new items in this JSON-lines file and "
        "replay it on start, so they survive restarts."),
) -> None:
    """Serve recommendations, search and the web page over HTTP (docs at /docs)."""
    token = token or None
    if not token and not _is_loopback(host):
        if not public_reads:
            console.print(f"[red]refusing to serve on {host} without a token[/]: anyone who "
                          f"can reach it could list every user, read their histories and "
                          f"write feedback and items. Set --token (or FUSEREC_TOKEN), or pass "
                          f"--public-reads to serve it openly anyway.", soft_wrap=True)
            raise typer.Exit(2)
        console.print(f"[yellow]warning: serving on {host} without a token (--public-reads): "
                      f"every user, their history and the write endpoints are open to anyone "
                      f"who can reach this address.[/]", soft_wrap=True)
    import uvicorn

    from fuserec.serve import create_app

    web = create_app(artifacts, token=token or "", index=index, journal=journal,
                     public_reads=bool(public_reads))
    state = web.state.serving
    console.print(f"serving {state.n_items} items and {len(state.users)} users from {artifacts}")
    if journal is not None:
        undone = state.replayed.get("unfeedback", 0)
        console.print(f"journal {journal}: replayed {state.replayed['feedback']} feedback "
                      f"events{f' ({undone} undone)' if undone else ''} and "
                      f"{state.replayed['items']} new items")
    needs = ("; write endpoints need the token" if public_reads
             else "; write and user endpoints need the token") if token else ""
    console.print(f"open [bold]http://{host}:{port}/[/] (API docs at http://{host}:{port}/docs)"
                  + needs)
    # the event loop, the journal's committer and the scoring threads share one GIL: a thread
    # that wakes (an fsync done, scores to compute) waits up to this interval for a busy loop
    # to let go; Python's 5 ms default is what a feedback or a recommendation waited, twice
    # everything loaded so far (torch, pandas, the artifacts: about 265,000 objects on the
    # demo) lives as long as the server; a full garbage collection scanned all of it and
    # stalled the event loop for 0.3-3 s under load, every request in flight waiting. Frozen,
    # a full collection scans only what requests created (under 25 ms measured)
    gc.collect()
    gc.freeze()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SERVE_SWITCH_INTERVAL_S)
    try:
        uvicorn.run(web, host=host, port=port, log_level="warning")
    finally:  # a caller in the same process (a test) gets its own settings back
        sys.setswitchinterval(previous)
        gc.unfreeze()


def _is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


@app.command("models")
def list_models() -> None:
    """List the registered recommender models."""
    from fuserec.models import MODELS

    for name in MODELS.names():
        console.print(name)


@app.command(context_settings={"allow_extra_args": True})
def evaluate(
    ctx: typer.Context,
    dataset: str = typer.Option(..., help="Dataset adapter: tiktok, matrices or movielens."),
    data_dir: Path = typer.Option(..., exists=True, file_okay=False, help="The dataset folder."),
    model: list[str] = typer.Option(["all"], help="Model name(s), or 'all'. Repeatable."),
    k: list[int] = typer.Option([10, 20], help="Cut-offs, e.g. --k 10 20."),
    json_out: Path | None = typer.Option(None, "--json", help="Write the results here."),
    cache_dir: Path | None = typer.Option(None, help="Feature cache folder (MovieLens)."),
    validation_fraction: float = typer.Option(
        0.1, min=0.01, max=0.5, help="Share of each user's train items held out for early "
        "stopping when the dataset has no validation split."),
    seed: int = typer.Option(0, help="Seed of the carved validation split and of training."),
    save_dir: Path | None = typer.Option(None, help="Save each fitted model here "
                                         "(model.safetensors + model.json per model)."),
    progress: bool = typer.Option(True, help="Show progress bars."),
    report: Path | None = typer.Option(
        None, help="Also write a full report (Markdown + HTML: beyond-accuracy metrics, user "
        "groups, modality ablation, MMR trade-off) into this folder."),
    search: bool = typer.Option(False, help="Search the small validation grids `fuserec run` "
                                "uses instead of the settings recorded for this dataset."),
) -> None:
    """Train models on a benchmark dataset and report full-ranking Recall@k / NDCG@k."""
    from rich.table import Table

    from fuserec.data.adapters import load_dataset
    from fuserec.evaluate.selection import select_models
    from fuserec.io import write_json
    from fuserec.models import MODELS

    ks = sorted(set(k) | {int(a) for a in ctx.args if a.isdigit()})
    unknown = [a for a in ctx.args if not a.isdigit()]
    if unknown:
        raise typer.BadParameter(f"unexpected arguments: {unknown}")
    options = {}
    if dataset == "movielens":
        from fuserec.encode import get_encoder

        options = {"cache_dir": cache_dir, "progress": progress, "encoder_factory": get_encoder}
    with user_errors():
        data = load_dataset(dataset, data_dir, **options)
    data = data.with_validation(validation_fraction, seed)
    console.print(data.summary())
    names = MODELS.names() if model == ["all"] else model
    # the same selection path as `fuserec run`; the recorded validation search in TUNED
    # stands in for the grid unless --search asks for it
    selection = select_models(data, names, ks, seed=seed, progress=progress, search=search,
                              save_dir=save_dir, log=console.print)
    results = [c.result for c in selection.ran]
    fitted = {c.name: c.model for c in selection.ran}
    table = Table(title=f"{data.name}: full ranking, train + validation items excluded")
    table.add_column("model")
    metric_names = list(results[0]["metrics"]) if results else []
    for m in metric_names:
        table.add_column(m, justify="right")
    table.add_column("train s", justify="right")
    table.add_column("s/epoch", justify="right")
    for r in results:
        table.add_row(r["model"], *(f"{r['metrics'][m]:.4f}" for m in metric_names),
                      f"{r['train_seconds']:.1f}", str(r.get("seconds_per_epoch", "-")))
    console.print(table)
    if any(c.validation for c in selection.ran):
        console.print(f"best on validation {selection.metric}: [bold]{selection.chosen.name}[/]")
    if json_out:
        write_json(json_out, results)
        console.print(f"wrote {json_out}")
    if report:
        from fuserec.evaluate.study import StudyConfig, data_from_dataset, run_study
        from fuserec.evaluate.study_report import render_study

        study = run_study(data_from_dataset(data, source=str(data_dir)),
                          StudyConfig(ks=tuple(ks), models=tuple(names), seed=seed,
                                      model_params={r["model"]: r.get("params", {})
                                                    for r in results}),
                          fitted=fitted, log=lambda msg: console.print(f"[dim]{msg}"))
        for r in results:
            study["models"][r["model"]]["train_seconds"] = r["train_seconds"]
        page = render_study(study, report)
        console.print(f"wrote {page} and {report / 'report.md'}")


@app.command("report")
def report_command(
    artifacts: Path = typer.Option(..., exists=True, file_okay=False,
                                   help="Artifact folder of a run, e.g. runs/demo/artifacts."),
    out: Path | None = typer.Option(None, help="Report folder (default: ARTIFACTS/../report)."),
    model: list[str] = typer.Option(
        ["popularity", "item-knn", "bpr-mf", "content-cosine"],
        help="Models to compare (repeatable); 'all' for every registered model."),
    k: list[int] = typer.Option([10, 20], help="Cut-offs; the first one is plotted."),
    split: str = typer.Option("given", help="given (the split saved with the artifacts), "
                              "random, leave-last-out or time."),
    test_fraction: float = typer.Option(0.2, min=0.0, max=0.9,
                                        help="Test share for --split random / time."),
    lambdas: str = typer.Option("0,0.1,0.2,0.3,0.5,0.7,0.9",
                                help="MMR λ values of the accuracy-diversity curve."),
    tune: bool = typer.Option(True, help="Tune hyperparameters on a validation split."),
    cold_items: float = typer.Option(0.15, min=0.0, max=0.9,
                                     help="Share of items held out for the cold-item section "
                                          "(0 to skip)."),
    seed: int = typer.Option(0, help="Seed of splits, tuning and training."),
) -> None:
    """Recompute every evaluation from an artifact folder and write report.md + report.html."""
    from fuserec.evaluate.study import StudyConfig, data_from_artifacts, run_study
    from fuserec.evaluate.study_report import render_study
    from fuserec.models import MODELS

    # temporal splits hold out validation the same way (the interactions just before test)
    options: dict[str, object] = {}
    if split == "random":
        options = {"test_fraction": test_fraction, "seed": seed}
    elif split == "time":
        options = {"test_fraction": test_fraction, "validation_fraction": 0.1 if tune else 0.0}
    elif split == "leave-last-out":
        options = {"n_test": 1, "n_validation": 1 if tune else 0}
    try:
        data = data_from_artifacts(artifacts, split, options)
        lams = tuple(float(x) for x in lambdas.split(",") if x.strip())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    names = tuple(MODELS.names()) if model == ["all"] else tuple(model)
    config = StudyConfig(ks=tuple(k), models=names, lambdas=lams, tune=tune,
                         cold_item_fraction=cold_items, seed=seed)
    study = run_study(data, config, log=lambda msg: console.print(f"[dim]{msg}"))
    target = out or artifacts.resolve().parent / "report"
    page = render_study(study, target)
    best = max(study["models"], key=lambda n: study["models"][n]["metrics"][f"ndcg@{k[0]}"])
    console.print(f"best model by NDCG@{k[0]}: [bold]{best}[/]")
    console.print(f"wrote [bold]{page}[/], {target / 'report.md'} and {target / 'study.json'}")


@app.command()
def example(
    name: str = typer.Argument(..., help="The example to write: movielens."),
    data_dir: Path = typer.Option(
        ..., exists=True, file_okay=False,
        help="The dataset folder, e.g. ../shared/data/movielens_posters."),
    out: Path = typer.Option(..., help="Catalog folder to write."),
    validation_fraction: float = typer.Option(
        0.1, min=0.01, max=0.5, help="Share of each user's train rows labelled 'validation' "
        "(seeded; the pipeline takes a given split as it is and selects models on it)."),
    seed: int = typer.Option(42, help="Seed of the validation labels."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Write a public dataset as an ordinary catalog folder (items.csv with posters,
    interactions.csv with its split, features/*.npy), ready for `fuserec validate` / `run`.

    movielens: ML-1M items of the ViLLA-MMBench split (train / test as published, plus a
    deterministic VALIDATION-FRACTION of each user's train rows labelled validation), posters
    copied into OUT/posters/, the LLM description as text, the year as attr_year, and the
    MMTF-14K trailer-audio i-vectors as features/trailer_audio.npy (zeros where a movie has no
    trailer)."""
    import time

    from fuserec.data.examples import write_movielens_catalog

    if name != "movielens":
        raise typer.BadParameter(f"unknown example {name!r}; known: movielens")
    start = time.perf_counter()
    with user_errors():
        s = write_movielens_catalog(data_dir, out, validation_fraction=validation_fraction,
                                    seed=seed, progress=progress)
    audio = (f"{s['items_with_trailer_audio']} items with trailer audio "
             f"({s['trailer_audio_dim']}-d, {s['trailer_audio_file']})"
             if s["trailer_audio_file"] else "no trailer-audio file found")
    console.print(f"{s['items']} items, {s['users']} users, {s['interactions']} interactions "
                  f"({s['train']} train, {s['validation']} validation, {s['test']} test)")
    console.print(f"{s['posters_copied']} posters copied ({s['posters_missing']} items without "
                  f"one); {audio}")
    console.print(f"wrote {out} in {time.perf_counter() - start:.1f} s; next: "
                  f"[bold]fuserec validate {out}[/]", soft_wrap=True)


if __name__ == "__main__":
    app()
