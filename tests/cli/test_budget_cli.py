"""`c2f train --budget 10%` / `--budget-bytes 2MB`: sizes the method to fit, reports it, and refuses clearly."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from c2f.cli.main import app


def _train(dataset, out, *args: str):
    return CliRunner().invoke(app, ["train", str(dataset), "--out", str(out), *args])


def test_budget_sizes_and_is_recorded(synthetic_lightgcn_dir, tmp_path):
    # 1000 entities, d = 16: full table 64,000 bytes; 10% = 6,400 bytes = 200 rows of 16 float16 values
    args = ["--method", "hash", "--dim", "16", "--epochs", "1", "--budget", "10%", "-p", "biases=false"]
    outcome = _train(synthetic_lightgcn_dir, tmp_path, *args)
    assert outcome.exit_code == 0, outcome.output
    assert "budget: 6400 bytes -> hash_buckets=200, embedding bytes 6400 (next size up: 6432)" in outcome.output
    version = (tmp_path / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "versions" / version / "manifest.json").read_text())
    assert manifest["budget"]["budget_percent"] == 10.0 and manifest["config"]["hash_buckets"] == 200


def test_a_budget_stops_the_codebook_at_its_cap_and_says_so(synthetic_lightgcn_dir, tmp_path):
    # 1000 entities: 60% of the d = 16 table fits hundreds of rows, the default 64 entities a row allow 15
    args = ["--method", "legcf", "--dim", "16", "--epochs", "1", "--budget", "60%", "-p", "biases=false"]
    outcome = _train(synthetic_lightgcn_dir, tmp_path, *args)
    assert outcome.exit_code == 0, outcome.output
    assert "-> m_c=15, embedding bytes" in outcome.output
    assert "(m_c at the largest value tried, 15)" in outcome.output
    version = (tmp_path / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "versions" / version / "manifest.json").read_text())
    assert manifest["budget"]["knob_max"] == 15 and manifest["budget"]["next_planned_bytes"] is None
    assert manifest["budget"]["achieved_bytes"] < manifest["budget"]["budget_bytes"]


def test_a_served_budget_sizes_a_full_table_served_from_codes(synthetic_lightgcn_dir, tmp_path):
    # 1000 entities, d = 16: 30% of 64,000 = 19,200 bytes of what serving holds; M uint8 codes an entity and
    # M·256·(16/M) float16 codebook values, and the 400 items' float16 norm scales (pq_item_norms, on for ud):
    # 1000·M + 8,192 + 800 -> M = 8 (16,992); the next divisor of 16 is 16 (24,992).
    # Stored counting would also count H_full and E (2·1000·16·2 = 64,000 bytes), which serving frees
    args = ["--method", "ud", "--dim", "16", "--epochs", "1", "--budget", "30%", "-p", "biases=false"]
    outcome = _train(synthetic_lightgcn_dir, tmp_path, *args, "-p", "budget_counts=served", "-p", "pq_subspaces=2")
    assert outcome.exit_code == 0, outcome.output
    assert "budget: 19200 bytes -> pq_subspaces=8, served bytes 16992 (next size up: 24992)" in outcome.output
    version = (tmp_path / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "versions" / version / "manifest.json").read_text())
    assert manifest["budget"]["counts"] == "served" and manifest["config"]["pq_subspaces"] == 8
    assert manifest["footprint"]["serving_memory_bytes"] == 16_992 < manifest["footprint"]["embedding_bytes"]
    assert manifest["footprint"]["served_form"] == "pq"
    assert manifest["footprint"]["arrays"]["pq_item_scale"] == 400 * 2  # float16, one an item


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # d = 128, t_c = 2: 8·t_c bytes an entity of assignments (uint16, float16) and 4 an item of item biases
        (["--method", "legcf", "--budget", "2%"], "needs on any dataset (3.516%)"),
        (["--method", "qr", "--dim", "16", "--budget-bytes", "1000"], "smallest qr model on 600 users and 400 items"),
        (["--method", "hash", "--budget", "2%", "--budget-bytes", "2MB"], "not both"),
        (["--method", "hash", "--budget-bytes", "2XB"], "a byte budget looks like 2MB"),
        (["--method", "hash", "--budget", "lots"], "a percentage budget looks like 2%"),
    ],
)
def test_impossible_or_malformed_budgets_exit_with_the_reason(synthetic_lightgcn_dir, tmp_path, args, message):
    outcome = _train(synthetic_lightgcn_dir, tmp_path, "--epochs", "1", *args)
    assert outcome.exit_code == 2, outcome.output
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", outcome.output).split())  # the error box wraps long lines
    assert message in text
    assert not (tmp_path / "LATEST").exists()
