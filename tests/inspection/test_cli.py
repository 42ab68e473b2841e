"""`qc inspect`: output format, exit codes, Ctrl-C and resume, with the stand-in scorer."""

import argparse
import json
import os
import signal

from sqlalchemy import select

from db.schema import ImageResult, InspectionRun
from db.session import get_engine, session_scope
from qc_models.cli import CliError, main
from qc_models.cli import inspect_cmds
from tests.inspection.helpers import FakeScorer, make_flat_folder, make_test_folder


def run_cli(argv, capsys, scorer=None):
    """Parse with only the inspect sub-command and translate errors like ``qc_models.cli.main``."""
    parser = argparse.ArgumentParser(prog="qc")
    inspect_cmds.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inspect", *argv])
    try:
        code = inspect_cmds.cmd_inspect(args, scorer=scorer or FakeScorer())
    except CliError as exc:
        print(f"error: {exc}", file=__import__("sys").stderr)
        code = exc.exit_code
    out = capsys.readouterr()
    return code, out.out.splitlines(), out.err


def test_json_first_and_last_lines(tmp_path, db_url, capsys):
    test = make_test_folder(tmp_path, n_good=2, defects={"crack": 2})
    code, lines, err = run_cli([str(test), "--db", db_url, "--json", "--line", "L2", "--batch-size", "2"], capsys)
    assert code == 0
    first, last = json.loads(lines[0]), json.loads(lines[-1])
    assert list(first) == ["run_id"] and isinstance(first["run_id"], int)
    assert last["run_id"] == first["run_id"] and last["status"] == "completed"
    assert (last["n_images"], last["n_scored"], last["n_defective"], last["line"]) == (4, 4, 2, "L2")
    assert last["defect_rate"] == 0.5
    assert last["per_defect_type"]["crack"] == {"n_images": 2, "n_defective": 2, "n_errors": 0}
    assert "images/s" in err and "ETA" in err


def test_plain_output_prints_run_id_then_summary(tmp_path, db_url, capsys):
    folder = make_flat_folder(tmp_path / "imgs", 3)
    code, lines, _ = run_cli([str(folder), "--db", db_url, "--quiet"], capsys)
    assert code == 0
    assert lines[0].startswith("run_id: ") and int(lines[0].split()[1]) >= 1
    text = "\n".join(lines)
    assert "images: 3" in text and "defective: 1" in text and "defect rate: 33.3%" in text


def test_error_rows_exit_1(tmp_path, db_url, capsys):
    folder = make_flat_folder(tmp_path / "imgs", 2)
    (folder / "broken.png").write_bytes(b"\x89PNG garbage")
    code, lines, _ = run_cli([str(folder), "--db", db_url, "--json", "--quiet"], capsys)
    assert code == 1 and json.loads(lines[-1])["n_errors"] == 1


def test_missing_folder_exits_2_with_message(tmp_path, capsys):
    code = main(["inspect", str(tmp_path / "nope"), "--models", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "nope: folder does not exist" in err


def test_missing_models_dir_exits_2(tmp_path, capsys):
    make_flat_folder(tmp_path / "imgs", 1)
    code = main(["inspect", str(tmp_path / "imgs"), "--models", str(tmp_path / "no-models")])
    assert code == 2 and "model registry folder does not exist" in capsys.readouterr().err


def test_empty_folder_exits_2(tmp_path, db_url, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli([str(tmp_path / "empty"), "--db", db_url], capsys)
    assert code == 2 and "no images to inspect" in err


def test_unusable_database_exits_2(tmp_path, capsys):
    folder = make_flat_folder(tmp_path / "imgs", 1)
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    code, _, err = run_cli([str(folder), "--db", f"sqlite:///{blocker}/sub/qc.db"], capsys)
    assert code == 2 and "error: database" in err


class _CtrlC(FakeScorer):
    """Delivers SIGINT to this process on the chosen scorer calls, like an operator's Ctrl-C."""

    def __init__(self, at_calls):
        super().__init__()
        self.at_calls = at_calls

    def score(self, images):
        out = super().score(images)
        if self.calls in self.at_calls:
            os.kill(os.getpid(), signal.SIGINT)
        return out


def _rel_paths(db_url, run_id):
    with session_scope(get_engine(db_url)) as s:
        return list(s.execute(select(ImageResult.rel_path).where(ImageResult.run_id == run_id)).scalars())


def _status(db_url, run_id):
    with session_scope(get_engine(db_url)) as s:
        return s.get(InspectionRun, run_id).status


def test_ctrl_c_marks_interrupted_and_resume_completes(tmp_path, db_url, capsys):
    folder = make_flat_folder(tmp_path / "imgs", 10)
    handler = signal.getsignal(signal.SIGINT)
    code, lines, err = run_cli([str(folder), "--db", db_url, "--json", "--batch-size", "2"], capsys, _CtrlC({2}))
    assert signal.getsignal(signal.SIGINT) is handler  # restored
    run_id = json.loads(lines[0])["run_id"]
    assert code == 130 and json.loads(lines[-1])["status"] == "interrupted"
    assert f"--resume {run_id}" in err and _status(db_url, run_id) == "interrupted"
    assert len(_rel_paths(db_url, run_id)) == 4  # the batch in flight was finished and committed

    code, lines, _ = run_cli([str(folder), "--db", db_url, "--json", "--resume", str(run_id)], capsys)
    assert code == 0 and json.loads(lines[0]) == {"run_id": run_id}
    assert json.loads(lines[-1])["status"] == "completed"
    paths = _rel_paths(db_url, run_id)
    assert len(paths) == len(set(paths)) == 10


def test_second_ctrl_c_stops_at_once(tmp_path, db_url, capsys):
    folder = make_flat_folder(tmp_path / "imgs", 10)
    code, lines, err = run_cli([str(folder), "--db", db_url, "--batch-size", "2"], capsys, _CtrlC({1, 2}))
    run_id = int(lines[0].split()[1])
    assert code == 130 and "interrupted" in err and _status(db_url, run_id) == "interrupted"
    assert len(_rel_paths(db_url, run_id)) == 2  # second batch was not committed
