"""`c2f demo` (README's first set-up command) trains, serves in-process and recommends from the user's genre."""

from __future__ import annotations

from typer.testing import CliRunner

from c2f.cli.demo import run_demo
from c2f.cli.main import app


def test_demo_recommends_mostly_from_the_users_planted_genre(tmp_path):
    result = run_demo(None, str(tmp_path), "c2f", params={"epochs": 8}, echo=None)
    items = [entry["item_id"] for entry in result.recommendation["items"]]
    assert len(items) == 10 and result.genre is not None
    in_genre = sum(item.startswith(result.genre) for item in items)
    assert in_genre >= 7, (result.genre, items)
    assert result.footprint["params_paper"] < result.footprint["full_table_params"]


def test_cli_train_publishes_a_version(synthetic_lightgcn_dir, tmp_path):
    runner = CliRunner()
    args = [
        "train",
        str(synthetic_lightgcn_dir),
        "--out",
        str(tmp_path),
        "--method",
        "legcf",
        "--dim",
        "16",
        "--epochs",
        "2",
        "-p",
        "m_c=16",
    ]
    outcome = runner.invoke(app, args)
    assert outcome.exit_code == 0, outcome.output
    assert "published" in outcome.output and "served (compressed) test" in outcome.output
    assert (tmp_path / "LATEST").read_text().strip() in outcome.output


def test_cli_rejects_unknown_training_parameters(synthetic_lightgcn_dir, tmp_path):
    outcome = CliRunner().invoke(app, ["train", str(synthetic_lightgcn_dir), "--out", str(tmp_path), "-p", "bogus=1"])
    assert outcome.exit_code != 0
    assert "unknown training parameters: bogus" in outcome.output
