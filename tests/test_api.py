"""The Python API (``c2f.train``, ``c2f.load``, ``c2f.Model``): trained on the small planted-community data with
tiny settings, checked against the service's own Recommender, saved and loaded back; ``import c2f`` stays free of
torch; the README's "From Python" example runs as written; a wheel of the repository installs only ``c2f``."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import c2f
from c2f.contract.artifact import LATEST_FILE, list_versions
from c2f.trainer.synthetic import planted_communities

REPO = Path(__file__).resolve().parents[1]

# tiny settings: a few seconds of training on two cores
TINY: dict[str, Any] = {
    "dim": 8,
    "layers": 1,
    "epochs": 2,
    "patience": 1,
    "batch_size": 2048,
    "m_c": 8,
    "m_r": 4,
    "d_r": 8,
    "t_r": 2,
    "seed": 3,
}
TINY_UD: dict[str, Any] = {k: TINY[k] for k in ("dim", "layers", "epochs", "patience", "batch_size", "seed")}


@pytest.fixture(scope="module")
def model(synthetic_lightgcn_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> c2f.Model:
    """c2f trained on the LightGCN directory of planted_communities() (600 users, 400 items), published into a
    root of its own."""
    root = tmp_path_factory.mktemp("api_root")
    return c2f.train(synthetic_lightgcn_dir, method="c2f", out=root, progress=False, **TINY)


def _seen(model: c2f.Model, user_id: str) -> set[str]:
    """The user's training items, read from the service's Recommender by index (not through the API)."""
    rec = model.recommender
    index = rec.user_index(user_id)
    assert index is not None
    return set(rec.item_ids[rec.seen_items(index)].tolist())


# ----------------------------------------------------------------------------------------------------------------
# import


def test_import_c2f_does_not_import_torch() -> None:
    code = (
        "import c2f, sys\n"
        "assert not [m for m in sys.modules if m.startswith('c2f.')], 'import c2f imported a layer'\n"
        "c2f.load; c2f.Model; c2f.UnknownIdError; c2f.ArgumentError; c2f.ArtifactError\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'c2f.trainer' not in sys.modules, 'trainer imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_top_level_names() -> None:
    for name in ("train", "load", "Model", "UnknownIdError", "ArgumentError", "ArtifactError", "BudgetError"):
        assert name in c2f.__all__ and name in dir(c2f)
        assert getattr(c2f, name) is not None
    with pytest.raises(AttributeError):
        c2f.no_such_name  # noqa: B018
    assert issubclass(c2f.ArgumentError, ValueError) and issubclass(c2f.UnknownIdError, LookupError)


# ----------------------------------------------------------------------------------------------------------------
# recommend / similar_items


def test_recommend_known_users_gives_n_unseen_items(model: c2f.Model) -> None:
    for user in model.user_ids[:20].tolist():
        ids, scores = model.recommend(user, n=10)
        assert ids.shape == (10,) and scores.shape == (10,) and scores.dtype == np.float32
        assert len(set(ids.tolist())) == 10
        assert not set(ids.tolist()) & _seen(model, user)
        assert set(model.seen_items(user).tolist()) == _seen(model, user)
        assert np.all(np.diff(scores) <= 0)
        # the same answer as the service's scorer, by index
        index, _ = model.recommender.recommend(model.recommender.user_index(user), 10)
        assert ids.tolist() == model.item_ids[index].tolist()


def test_recommend_many_users_one_row_each(model: c2f.Model) -> None:
    users = model.user_ids[:5].tolist()
    ids, scores = model.recommend(users, n=7)
    assert ids.shape == (5, 7) and scores.shape == (5, 7)
    for row, user in enumerate(users):
        one_ids, one_scores = model.recommend(user, n=7)
        assert ids[row].tolist() == one_ids.tolist()
        np.testing.assert_allclose(scores[row], one_scores, rtol=1e-6)
    # integer ids work for numeric ids; numpy arrays of ids too
    assert model.recommend(int(users[0]), n=7)[0].tolist() == ids[0].tolist()
    assert model.recommend(np.asarray(users), n=7)[0].tolist() == ids.tolist()


def test_a_visitor_folded_in_from_a_planted_community_gets_that_community(model: c2f.Model) -> None:
    _, _, _, item_comm = planted_communities()
    shares = []
    for community in range(8):
        history = [str(i) for i in np.flatnonzero(item_comm == community)[:8]]
        ids, scores = model.recommend_from_items([*history, "no-such-item"], n=10)  # unknown ids are skipped
        assert ids.shape == (10,) and np.all(np.diff(scores) <= 0) and not set(ids.tolist()) & set(history)
        shares.append(np.mean([item_comm[int(i)] == community for i in ids]))
        vector = model.fold_in(history)
        assert vector.shape == (model.recommender.scorer.item_vectors(np.array([0])).shape[1],)
    # 1/8 by chance; trained users of this (two-epoch) model get about 0.9 of their top 10 from their community
    assert np.mean(shares) >= 0.8 and min(shares) >= 0.5, shares
    # many histories: one row each, the same as one at a time
    histories = [[str(i) for i in np.flatnonzero(item_comm == c)[:8]] for c in range(2)]
    many, _ = model.recommend_from_items(histories, n=5, exclude=[])
    assert many.shape == (2, 5) and many[1].tolist() == model.recommend_from_items(histories[1], n=5)[0].tolist()
    assert model.fold_in(histories).shape[0] == 2
    with pytest.raises(c2f.ArgumentError, match="estimator"):
        model.fold_in(histories[0], estimator="magic")  # type: ignore[arg-type]
    with pytest.raises(c2f.ArgumentError):
        model.recommend_from_items("17")


def test_load_can_serve_known_users_by_fold_in(model: c2f.Model) -> None:
    folded = c2f.load(model.path, user_vectors="fold_in")
    user = str(model.user_ids[3])
    ids, _ = folded.recommend(user, n=10)
    assert ids.tolist() == folded.recommend_from_items(folded.seen_items(user).tolist(), n=10)[0].tolist()
    with pytest.raises(c2f.ArgumentError, match="user_vectors"):
        c2f.load(model.path, user_vectors="magic")  # type: ignore[arg-type]


def test_where_needs_a_model_with_item_attributes(model: c2f.Model) -> None:
    with pytest.raises(c2f.ArgumentError, match="no item attributes"):
        model.recommend(str(model.user_ids[0]), where="genre:jazz")


def test_where_keeps_the_items_whose_attributes_match(tmp_path: Path) -> None:
    users, items, community_of_user, community_of_item = planted_communities(seed=4)
    table = pd.DataFrame({"user": [f"u{u}" for u in users], "item": [f"i{i}" for i in items]})
    (tmp_path / "data").mkdir()
    table.to_csv(tmp_path / "data" / "plays.csv", index=False)
    rows = "".join(f"i{i},c{c}\n" for i, c in enumerate(community_of_item))
    (tmp_path / "data" / "plays.items.csv").write_text("item,community\n" + rows)
    model = c2f.train(tmp_path / "data" / "plays.csv", method="ud", progress=False, **TINY_UD)
    ids, _ = model.recommend("u0", n=10, where="community:c3|c5")
    assert ids.size == 10 and {community_of_item[int(i[1:])] for i in ids} <= {3, 5}
    both, _ = model.recommend("u0", n=10, where=["community:c3|c5", "community:c5"])  # clauses: all hold
    assert {community_of_item[int(i[1:])] for i in both} == {5}
    for bad in ("community", "colour:red"):
        with pytest.raises(c2f.ArgumentError):
            model.recommend("u0", where=bad)


def test_exclude_and_items_filter_the_candidates(model: c2f.Model) -> None:
    user = str(model.user_ids[0])
    top, _ = model.recommend(user, n=5)
    excluded, _ = model.recommend(user, n=5, exclude=[top[0], top[1], "no-such-item"])  # unknown: ignored
    assert top[0] not in excluded and top[1] not in excluded
    assert excluded[:3].tolist() == top[2:].tolist()
    candidates = [i for i in model.item_ids.tolist() if i not in _seen(model, user)][:6]
    ids, scores = model.recommend(user, n=20, items=candidates)
    assert sorted(ids.tolist()) == sorted(candidates) and ids.size == 6
    # a row with fewer candidates than n is padded in the many-users form
    many, many_scores = model.recommend([user, user], n=8, items=candidates)
    assert many.shape == (2, 8) and many[0, 6:].tolist() == ["", ""] and np.isneginf(many_scores[0, 6:]).all()
    with pytest.raises(c2f.UnknownIdError, match="no-such-item"):
        model.recommend(user, items=["no-such-item"])
    seen = model.recommend(user, n=model.recommender.n_items, exclude_seen=False)[0]
    assert set(seen.tolist()) == set(model.item_ids.tolist())


def test_similar_items(model: c2f.Model) -> None:
    item = str(model.item_ids[3])
    ids, sims = model.similar_items(item, n=5)
    assert ids.shape == (5,) and item not in ids.tolist()
    assert np.all(np.diff(sims) <= 1e-6) and np.all(sims <= 1.0 + 1e-5)


def test_unknown_ids_raise_the_public_exception(model: c2f.Model) -> None:
    with pytest.raises(c2f.UnknownIdError, match="unknown user id: 'nobody'") as info:
        model.recommend("nobody")
    assert info.value.kind == "user" and info.value.ids == ["nobody"]
    with pytest.raises(c2f.UnknownIdError, match="'x1', 'x2'") as info:
        model.recommend([str(model.user_ids[0]), "x1", "x2"])
    assert info.value.ids == ["x1", "x2"]
    with pytest.raises(LookupError):
        model.similar_items("no-such-item")
    with pytest.raises(c2f.UnknownIdError):
        model.seen_items("nobody")


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 0}, {"n": -3}, {"n": "5"}, {"n": True}, {"user_ids": None}, {"user_ids": 1.5}, {"exclude": "abc"}],
)
def test_bad_arguments_raise_argument_error(model: c2f.Model, kwargs: dict[str, Any]) -> None:
    call: dict[str, Any] = {"user_ids": str(model.user_ids[0]), **kwargs}
    with pytest.raises(c2f.ArgumentError):
        model.recommend(**call)


def test_bad_training_arguments(tmp_path: Path) -> None:
    with pytest.raises(c2f.ArgumentError, match="unknown training parameters: no_such_param"):
        c2f.train(tmp_path, no_such_param=1)
    with pytest.raises(c2f.ArgumentError, match="method"):
        c2f.train(tmp_path, method="nope")
    with pytest.raises(c2f.ArgumentError, match="progress"):
        c2f.train(tmp_path, progress="yes")  # type: ignore[arg-type]
    with pytest.raises(c2f.BudgetError):
        c2f.train(tmp_path, budget="1B")
    with pytest.raises(c2f.ArgumentError, match="data must be"):
        c2f.train([("u1", "i1")], progress=False)
    with pytest.raises(c2f.ArgumentError, match="no user column"):
        c2f.train(pd.DataFrame({"who": ["a"], "item": ["b"]}), progress=False)
    with pytest.raises(c2f.ArgumentError, match="one id per row"):
        c2f.train(sp.eye(3, format="csr"), user_ids=["a", "b"], progress=False)


# ----------------------------------------------------------------------------------------------------------------
# footprint / metrics / save / load


def test_footprint_and_metrics(model: c2f.Model) -> None:
    fp = model.footprint()
    assert fp.method == "c2f" and fp.n_users == 600 and fp.n_items == 400 and fp.d == 8
    assert 0 < fp.embedding_bytes < fp.full_table_bytes
    metrics = model.metrics
    assert 0.0 <= metrics["trained"]["test"]["recall@20"] <= 1.0
    assert "recall@20" in metrics["served"]["compressed"]["test"]


def test_the_published_version_is_described(model: c2f.Model) -> None:
    """What benchmarks read off a trained model without the layers: its version, directory and typed manifest."""
    assert model.path.name == model.version and model.path.parent.name == "versions"
    assert (model.path / "manifest.json").is_file() and "model.npz" in model.manifest.files
    assert model.manifest.model_version == model.version and model.manifest.method == model.method == "c2f"
    assert model.manifest.footprint == model.footprint()
    assert model.manifest.metrics.as_reported() == model.metrics
    assert model.manifest.metrics.history and model.manifest.metrics.timings


def test_save_then_load_round_trips(model: c2f.Model, tmp_path: Path) -> None:
    root = tmp_path / "saved"
    version = model.save(root)
    assert list_versions(root) == [version] and (root / LATEST_FILE).read_text().strip() == version
    users = model.user_ids[:8].tolist()
    expected = model.recommend(users, n=10)
    for loaded in (c2f.load(root), c2f.load(root, version), c2f.load(root / "versions" / version)):
        assert loaded.version == version and loaded.method == model.method
        got = loaded.recommend(users, n=10)
        assert got[0].tolist() == expected[0].tolist()
        np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
        assert loaded.similar_items(str(model.item_ids[0]), 5)[0].tolist() == (
            model.similar_items(str(model.item_ids[0]), 5)[0].tolist()
        )
        assert loaded.footprint() == model.footprint()
    second = c2f.load(root).save(root)  # saving again publishes a newer version and points LATEST at it
    assert list_versions(root) == [version, second] and c2f.load(root).version == second
    exact = c2f.load(root, mode="exact")
    assert exact.mode == "exact" and exact.recommend(users[0], n=3)[0].shape == (3,)


def test_load_errors(tmp_path: Path, model: c2f.Model) -> None:
    with pytest.raises(c2f.ArtifactError, match="no model version"):
        c2f.load(tmp_path)
    with pytest.raises(c2f.ArgumentError):
        c2f.load(tmp_path, mode="fast")  # type: ignore[arg-type]
    root = tmp_path / "copy"
    version = model.save(root)
    npz = root / "versions" / version / "model.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(c2f.ArtifactError, match="checksum mismatch"):
        c2f.load(root)


# ----------------------------------------------------------------------------------------------------------------
# other inputs


def _planted(n_users: int = 150, n_items: int = 60) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    users, items, _, _ = planted_communities(n_users=n_users, n_items=n_items, n_communities=4, seed=5)
    return users, items, [f"user-{u}" for u in range(n_users)], [f"item-{i}" for i in range(n_items)]


def test_scipy_matrix_input(tmp_path: Path) -> None:
    users, items, user_names, item_names = _planted()
    matrix = sp.csr_matrix((np.ones(users.size), (users, items)), shape=(len(user_names), len(item_names)))
    events: list[dict[str, Any]] = []
    model = c2f.train(
        matrix, method="ud", user_ids=user_names, item_ids=item_names, out=tmp_path, progress=events.append, **TINY_UD
    )
    assert {e["stage"] for e in events} >= {"loading", "export"}
    assert sorted(model.user_ids.tolist()) == sorted(user_names)
    ids, _ = model.recommend("user-7", n=5)
    assert ids.shape == (5,) and set(ids.tolist()) <= set(item_names)
    assert not set(ids.tolist()) & _seen(model, "user-7")
    # rows without ids: the row / column numbers are the ids
    plain = c2f.train(matrix, method="ud", progress=False, **TINY_UD)
    assert plain.recommend(7, n=3)[0].shape == (3,) and "7" in plain.user_ids.tolist()


def test_pandas_input_with_named_columns(capfd: pytest.CaptureFixture[str]) -> None:
    users, items, user_names, item_names = _planted()
    frame = pd.DataFrame({"customer": np.asarray(user_names)[users], "product": np.asarray(item_names)[items]})
    model = c2f.train(frame, method="ud", user_col="customer", item_col="product", progress=False, **TINY_UD)
    assert "phase" not in capfd.readouterr().err  # progress=False: no progress bars
    ids, _ = model.recommend(["user-3", "user-4"], n=4)
    assert ids.shape == (2, 4) and set(ids.ravel().tolist()) <= set(item_names)
    path = model.path
    assert path.is_dir()
    del model  # a model trained without out= keeps its version in a temporary root that goes with it
    import gc

    gc.collect()
    assert not path.exists()


def test_tables_are_written_for_the_same_readers(tmp_path: Path) -> None:
    """pandas and pyarrow tables and scipy matrices reach the trainer as files its readers parse back to the same
    interactions (no training)."""
    pa = pytest.importorskip("pyarrow")
    from c2f.api import _write_data
    from c2f.trainer.data import load_dataset
    from c2f.trainer.data.readers import COLUMN_ALIASES

    users, items, user_names, item_names = _planted(40, 20)
    pairs = {(user_names[u], item_names[i]) for u, i in zip(users.tolist(), items.tolist(), strict=True)}
    frame = pd.DataFrame({"user_id": np.asarray(user_names)[users], "item_id": np.asarray(item_names)[items]})
    matrix = sp.coo_matrix((np.ones(users.size), (users, items)), shape=(40, 20))
    inputs = {
        "pandas": (frame, None, None),
        "pyarrow": (pa.Table.from_pandas(frame, preserve_index=False), None, None),
        "scipy": (matrix, user_names, item_names),
    }
    for name, (data, uids, iids) in inputs.items():
        directory = tmp_path / name
        directory.mkdir()
        uri = _write_data(data, directory, uids, iids, None, None, COLUMN_ALIASES)
        loaded = load_dataset(uri, seed=0, valid_fraction=0.1)
        got = set()
        for split in (loaded.train, loaded.valid, loaded.test):
            coo = split.tocoo()
            got |= {
                (str(loaded.user_ids[u]), str(loaded.item_ids[i]))
                for u, i in zip(coo.row.tolist(), coo.col.tolist(), strict=True)
            }
        assert got == pairs, name


# ----------------------------------------------------------------------------------------------------------------
# README and packaging


def readme_example() -> str:
    """The ```python block under the README's "From Python" heading."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no python block under ## From Python"
    return match.group(1)


def test_readme_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_example(), "README.md#from-python", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "artifacts" / LATEST_FILE).is_file()


def test_wheel_installs_only_c2f(tmp_path: Path) -> None:
    """A wheel built from the repository holds the ``c2f`` package and its dist-info, nothing else at the top.

    Built from a copy of what the build reads (pyproject.toml, README.md, c2f/), so no build/ or egg-info is left in
    the repository and no stale build/ leaks into the wheel."""
    pytest.importorskip("setuptools")
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "c2f", source / "c2f", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "wheel"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."]
    env = {**os.environ, "PIP_NO_INDEX": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=source, timeout=300)
    if done.returncode != 0:
        pytest.skip(f"cannot build a wheel offline here: {done.stderr.strip().splitlines()[-1:]}")
    (wheel,) = out.glob("c2f-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        record = next(n for n in names if n.endswith(".dist-info/RECORD"))
        recorded = [line.split(",", 1)[0] for line in zf.read(record).decode().splitlines() if line]
    for listing in (names, recorded):
        tops = {name.split("/", 1)[0] for name in listing}
        assert {t for t in tops if not t.endswith(".dist-info")} == {"c2f"}, sorted(tops)
    assert "c2f/api.py" in names and "c2f/__init__.py" in names


def test_help_c2f_is_the_api_reference() -> None:
    """`help(c2f)` documents the whole public API (from the docstrings), and rendering it imports no torch."""
    code = (
        "import pydoc, sys, c2f\n"
        "text = pydoc.render_doc(c2f, renderer=pydoc.plaintext)\n"
        "names = ['train(', 'load(', 'class Model', 'recommend(', 'similar_items(', 'footprint(', 'save(',\n"
        "         'ROOT/versions/<version>', 'c2f.contract.manifest.Manifest',\n"
        "         'UnknownIdError', 'ArgumentError', 'ArtifactError', 'BudgetError', 'MethodError']\n"
        "print([n for n in names if n not in text], 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[] False", out.stdout + out.stderr
