import json

from typer.testing import CliRunner

from fuserec.cli import app
from fuserec.data.synthetic import DemoCatalogSpec, generate_demo_catalog


def test_validate_command_reports_broken_records(tmp_path):
    root = generate_demo_catalog(tmp_path / "cat", DemoCatalogSpec(n_items=12, n_users=6, seed=1),
                                 progress=False)
    report = tmp_path / "report.json"
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["validate", str(root), "--report", str(report),
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "broken_audio" in result.output
    data = json.loads(report.read_text())
    assert data["rejected"] == 3 and data["dropped_media"] == 3


def test_missing_catalog_is_a_clear_error(tmp_path):
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["validate", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert "does not exist" in result.output


def test_help_lists_the_commands():
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("demo", "run", "validate", "encoders"):
        assert command in result.output
