"""`qc inspect` with the real registry: the tiny trained models of ``tiny_models_dir``."""

import json

from sqlalchemy import select

from db.schema import ImageResult, ModelVersion
from db.session import get_engine, session_scope
from qc_models.cli import main
from qc_models.data.layout import open_category
from qc_models.inspection import continue_run, create_run


def test_cli_with_trained_models_then_resume_path(tiny_models_dir, db_url, capsys):
    models_dir, dataset, category = tiny_models_dir
    layout = open_category(dataset, category)
    test_dir = layout.path / "test"
    n_test = len(layout.samples("test"))

    code = main(["inspect", str(test_dir), "--models", str(models_dir), "--db", db_url, "--json", "--quiet",
                 "--batch-size", "8"])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 0, err
    first, summary = json.loads(lines[0]), json.loads(lines[-1])
    assert summary["run_id"] == first["run_id"] and summary["status"] == "completed"
    assert summary["category"] == category  # the registry's only category
    assert summary["n_images"] == summary["n_scored"] == n_test
    assert sorted(m["model"] for m in summary["models"]) == ["cae", "ensemble", "patchcore", "unet"]
    assert set(summary["per_defect_type"]) == {"good", *layout.defect_types()}
    assert "untrained" in err  # random-init backbone is called out

    with session_scope(get_engine(db_url)) as s:
        rows = list(s.execute(select(ImageResult).where(ImageResult.run_id == first["run_id"])).scalars())
        versions = list(s.execute(select(ModelVersion)).scalars())
    assert len(rows) == n_test
    for r in rows:
        assert None not in (r.cae_score, r.unet_score, r.patchcore_score, r.ensemble_score, r.is_defective)
        assert r.is_defective == (r.ensemble_score >= 0.5)
        assert len(r.anomaly_grid) == 32 * 32 and 0.0 <= r.anomaly_area_fraction <= 1.0
        assert (r.bbox_x is None) == (r.anomaly_area_fraction == 0.0)
    assert {v.model_name for v in versions} == {"cae", "unet", "patchcore", "ensemble"}
    patchcore = next(v for v in versions if v.model_name == "patchcore")
    assert (patchcore.backbone_weights, patchcore.pretrained) == ("none", False)
    assert patchcore.metrics and patchcore.threshold is not None

    # create/continue split: continue_run reloads exactly the versions the run recorded
    defect = layout.defect_types()[0]
    run_id = create_run(test_dir / defect, models_dir=models_dir, db_url=db_url)
    done = continue_run(run_id, db_url=db_url, batch_size=4)
    assert done.status == "completed" and done.n_scored == len(list((test_dir / defect).iterdir()))
    assert set(done.per_defect_type) == {defect}
