"""`qc demo-setup`: each missing step runs once (models evaluated, test folders inspected), a second launch does nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from db.queries import count_runs
from db.session import get_engine
from qc_models.cli import main
from qc_models.registry import list_versions


def _without_metrics(models_dir: Path) -> None:
    """Strip stored evaluations, as a freshly trained registry has none."""
    for meta_path in models_dir.rglob("model.json"):
        meta = json.loads(meta_path.read_text())
        meta.pop("metrics", None)
        meta.pop("evaluated", None)
        meta_path.write_text(json.dumps(meta))


def test_demo_setup_evaluates_and_inspects_once(tiny_models_dir, tmp_path: Path, capsys) -> None:
    models_src, dataset, category = tiny_models_dir
    data = tmp_path / "data"
    shutil.copytree(dataset / category, data / category)  # one category, so nothing needs training
    models = tmp_path / "models"
    shutil.copytree(models_src, models)
    _without_metrics(models)
    db_url = f"sqlite:///{tmp_path / 'qc.db'}"
    args = ["demo-setup", "--data", str(data), "--models", str(models), "--db", db_url]

    assert main(args) == 0
    err = capsys.readouterr().err
    assert "training" not in err
    assert f"evaluating {category}'s models" in err and f"inspecting {category}/test" in err
    versions = list_versions(models, category=category)
    assert {v.model for v in versions} == {"cae", "unet", "patchcore", "ensemble"}
    assert all("image_auroc" in v.metrics for v in versions)
    evaluated = {v.model: json.loads((v.path / "model.json").read_text())["evaluated"] for v in versions}
    assert count_runs(get_engine(db_url)) == 1

    assert main(args) == 0  # second launch: everything is there
    err = capsys.readouterr().err
    assert "evaluating" not in err and "inspecting" not in err and "ready:" in err
    assert {v.model: json.loads((v.path / "model.json").read_text())["evaluated"]
            for v in list_versions(models, category=category)} == evaluated
    assert count_runs(get_engine(db_url)) == 1


def test_demo_setup_can_skip_evaluation(tiny_models_dir, tmp_path: Path, capsys) -> None:
    models_src, dataset, category = tiny_models_dir
    data = tmp_path / "data"
    shutil.copytree(dataset / category, data / category)
    models = tmp_path / "models"
    shutil.copytree(models_src, models)
    _without_metrics(models)
    rc = main(["demo-setup", "--data", str(data), "--models", str(models), "--db", f"sqlite:///{tmp_path / 'q.db'}",
               "--skip-evaluation", "--skip-inspection"])
    assert rc == 0 and "evaluating" not in capsys.readouterr().err
    assert not any(v.metrics for v in list_versions(models, category=category))


def test_demo_setup_still_finishes_when_evaluation_fails(tiny_models_dir, tmp_path: Path, capsys) -> None:
    """A dataset whose test split is gone: the metrics step says why and the launch goes on."""
    models_src, dataset, category = tiny_models_dir
    data = tmp_path / "data"
    shutil.copytree(dataset / category, data / category)
    shutil.rmtree(data / category / "test")
    models = tmp_path / "models"
    shutil.copytree(models_src, models)
    _without_metrics(models)
    rc = main(["demo-setup", "--data", str(data), "--models", str(models), "--db", f"sqlite:///{tmp_path / 'q.db'}",
               "--skip-inspection"])
    err = capsys.readouterr().err
    assert rc == 0
    assert f"could not evaluate {category}:" in err and "test" in err and "ready:" in err
