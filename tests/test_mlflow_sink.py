"""The MLflow sink: a tiny run tracked in the default SQLite store, read back through MLflow's client."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from conftest import TINY_TERNARY_FLAGS
from vaekit.cli import app
from vaekit.config import build_config
from vaekit.errors import VaekitUsageError

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra is not installed: pip install 'vaekit[mlflow]'")


def test_a_run_is_tracked_with_params_metrics_and_artifacts(tmp_path, ternary_corpus):
    from mlflow.tracking import MlflowClient

    from vaekit.training.callbacks.mlflow_sink import RUN_ID_TAG, default_uri

    runs = tmp_path / "runs"
    args = ["train", "ternary", "--data", str(ternary_corpus), "--runs-dir", str(runs), "--run-id", "tracked",
            "--no-progress", "--set", "threads=1", *TINY_TERNARY_FLAGS, "--mlflow"]
    result = CliRunner().invoke(app, [*args, "--epochs", "2"])
    assert result.exit_code == 0, result.output
    resumed = CliRunner().invoke(app, [*args, "--epochs", "3", "--resume"])
    assert resumed.exit_code == 0, resumed.output

    client = MlflowClient(default_uri(runs))
    experiment = client.get_experiment_by_name("vaekit")
    found = client.search_runs([experiment.experiment_id], f"tags.`{RUN_ID_TAG}` = 'tracked'")
    assert len(found) == 1, "a resumed run continues its MLflow run"
    run = found[0]
    assert run.info.run_name == "tracked" and run.info.status == "FINISHED"
    assert run.data.params["model.latent_dim"] == "16" and run.data.params["domain"] == "ternary"
    history = client.get_metric_history(run.info.run_id, "val_loss")
    assert [m.step for m in history] == [1, 2, 3]
    logged = {line for line in (runs / "tracked" / "metrics.jsonl").read_text().splitlines()}
    assert len(logged) == 3
    assert run.data.metrics["final_val_loss"] == pytest.approx(history[-1].value)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "training_curves.png"} <= artifacts
    assert (runs / "mlartifacts").is_dir()


def test_asking_for_mlflow_without_it_installed_is_one_clear_error(monkeypatch):
    from vaekit.training.callbacks.mlflow_sink import MlflowSink

    monkeypatch.setitem(sys.modules, "mlflow", None)
    config = build_config([("test", {"train": {"mlflow": True}})])
    with pytest.raises(VaekitUsageError, match=r"pip install 'vaekit\[mlflow\]'"):
        MlflowSink.check_config(config)


@pytest.mark.parametrize("reason, status", [("early_stopping", "FINISHED"), ("pruned", "FINISHED"),
                                            ("SIGTERM", "KILLED"), ("nonfinite", "KILLED")])
def test_a_run_a_policy_ended_is_finished_and_one_a_signal_or_error_cut_short_is_killed(reason, status, tmp_path):
    from types import SimpleNamespace

    from vaekit.training.callbacks.mlflow_sink import MlflowSink
    from vaekit.training.events import StopReason

    class Client:  # records how the MLflow run was ended
        ended: list[str] = []

        def log_metric(self, *args) -> None:
            pass

        def set_terminated(self, run_id: str, status: str) -> None:
            self.ended.append(status)

    sink = MlflowSink(None)
    sink.client, sink.mlflow_run, sink.logging = Client(), "mlflow-run", True
    run = SimpleNamespace(config_path=tmp_path / "absent.yaml", results=tmp_path)
    sink.on_stop(SimpleNamespace(state=SimpleNamespace(best_epoch=1), run=run), StopReason(reason), "")
    sink.close(SimpleNamespace())  # ended once: closing afterwards changes nothing
    assert Client.ended == [status]
