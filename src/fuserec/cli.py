"""The ``fuserec`` command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(help="fuserec: multimodal recommendation from text, images and audio.",
                  no_args_is_help=True, add_completion=False)
console = Console()


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), help="Folder for the catalog, report and artifacts."),
    items: int = typer.Option(300, min=20, help="Items in the generated catalog."),
    users: int = typer.Option(200, min=10, help="Users in the generated catalog."),
    seed: int = typer.Option(7, help="Seed of the generated catalog."),
    inject_errors: bool = typer.Option(True, help="Add a few broken records to show validation."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Generate the demo catalog, then validate, encode, fuse, recommend and evaluate it."""
    from fuserec.data.synthetic import DemoCatalogSpec
    from fuserec.pipeline import PipelineConfig, run_demo

    spec = DemoCatalogSpec(n_items=items, n_users=users, seed=seed, inject_errors=inject_errors)
    results = run_demo(out, spec, PipelineConfig(progress=progress), console)
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
) -> None:
    """Run the pipeline on your own catalog folder."""
    from fuserec.pipeline import PipelineConfig, run_pipeline

    config = PipelineConfig(test_fraction=test_fraction, seed=seed, cache_dir=cache,
                            progress=progress)
    run_pipeline(catalog, out, config, console)


@app.command()
def validate(
    catalog: Path = typer.Argument(..., exists=True, file_okay=False, help="Catalog folder."),
    report: Path | None = typer.Option(None, help="Write the report as JSON here."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Check every record and media file of a catalog; print what was rejected and why."""
    from fuserec.data.loaders import load_catalog

    _, result = load_catalog(catalog, progress=progress)
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


if __name__ == "__main__":
    app()
