"""The sweep's contract: a failing model is recorded and the rest go on; finished work is skipped."""

import dataclasses

from cpbench.family.config import Config
from cpbench.export.data import DatasetSpec
from cpbench.workspace.folder import Workspace
from cpbench.export.sweep import ExportJob, run_sweep


@dataclasses.dataclass(frozen=True)
class CrashingJob(ExportJob):
    def run(self, observer):
        raise RuntimeError("the exporter crashed")


def job(config: str, cls=ExportJob):
    return cls(Config.parse(config), DatasetSpec.parse("fashionmnist"), recipe=None)


def test_a_failing_model_does_not_stop_the_sweep(tmp_path):
    workspace = Workspace(tmp_path)
    summary = run_sweep(workspace, [job("2,8,3,1", CrashingJob), job("3,8,3,1")])
    assert [o.status for o in summary.outcomes] == ["failed", "exported"]
    assert "the exporter crashed" in summary.outcomes[0].error
    with workspace.open_store() as store:
        assert [r.config_id for r in store.models()] == ["f3-s8-k3-l1"]


def test_changed_files_are_redone_and_intact_ones_skipped(tmp_path):
    workspace = Workspace(tmp_path)
    jobs = [job("2,8,3,1"), job("3,8,3,1")]
    run_sweep(workspace, jobs)
    (tmp_path / jobs[0].relative_file).write_bytes(b"tampered")
    again = run_sweep(workspace, jobs)
    assert [o.status for o in again.outcomes] == ["exported", "skipped"]
    forced = run_sweep(workspace, jobs, force=True)
    assert [o.status for o in forced.outcomes] == ["exported", "exported"]
