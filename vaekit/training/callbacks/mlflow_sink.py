"""MLflow tracking (train.mlflow, `train --mlflow`): one MLflow run per vaekit run, named by its run
id, in the MLflow experiment "vaekit". It holds the run's config as parameters (dotted keys), every
epoch's scalar metrics at step = epoch, the final metrics (the last epoch's, and the best
checkpoint's epoch) and, at the end, the run's pictures and config.yaml as artifacts.

The store is train.mlflow_uri, by default the SQLite file ``RUNS_DIR/mlflow.db`` beside the run
directories (artifacts in ``RUNS_DIR/mlartifacts/``), so `mlflow ui --backend-store-uri
sqlite:///runs/mlflow.db` shows every run. A resumed run continues the same MLflow run. Needs the
extra: pip install 'vaekit[mlflow]'.
"""

from __future__ import annotations

from pathlib import Path

from vaekit.config import Config
from vaekit.errors import VaekitUsageError
from vaekit.training.events import Training, register_callback
from vaekit.training.metric_logger import MetricLogger

EXPERIMENT = "vaekit"
RUN_ID_TAG = "vaekit.run_id"
MAX_PARAM_LENGTH = 500  # MLflow's limit on a parameter value's length


def default_uri(runs_dir: Path) -> str:
    """The SQLite store beside the run directories."""
    return f"sqlite:///{Path(runs_dir).resolve() / 'mlflow.db'}"


def flat_params(config: dict, prefix: str = "") -> dict[str, str]:
    """A nested config as {dotted key: value as text} (the options dicts flattened too)."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)[:MAX_PARAM_LENGTH]
    return flat


@register_callback
class MlflowSink(MetricLogger):
    def __init__(self, uri: str):
        super().__init__()
        self.uri, self.client, self.mlflow_run = uri, None, None
        self.last: dict[str, float] | None = None  # the latest epoch's scalars, for the final_* metrics

    @classmethod
    def check_config(cls, config: Config) -> None:
        if not config.train.mlflow:
            return
        try:
            import mlflow  # noqa: F401
        except ImportError:
            raise VaekitUsageError("train.mlflow needs MLflow: pip install 'vaekit[mlflow]' (or pip install "
                                   "mlflow-skinny)") from None

    @classmethod
    def from_config(cls, config: Config) -> "MlflowSink | None":
        return cls(config.train.mlflow_uri) if config.train.mlflow else None

    def open(self, t: Training) -> None:
        from mlflow.tracking import MlflowClient

        runs_dir = t.run.path.parent
        uri = self.uri or default_uri(runs_dir)
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            artifacts = (runs_dir / "mlartifacts").resolve().as_uri() if not self.uri else None
            experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=artifacts)
        else:
            experiment_id = experiment.experiment_id
        earlier = self.client.search_runs([experiment_id], f"tags.`{RUN_ID_TAG}` = '{t.run.run_id}'",
                                          max_results=1) if t.resume else []
        if earlier:
            self.mlflow_run = earlier[0].info.run_id
            self.client.update_run(self.mlflow_run, status="RUNNING")
        else:
            run = self.client.create_run(experiment_id, run_name=t.run.run_id,
                                         tags={RUN_ID_TAG: t.run.run_id, "vaekit.domain": t.config.domain,
                                               "vaekit.model": t.config.model.name})
            self.mlflow_run = run.info.run_id
        self._log_params(flat_params(t.config.to_dict()))

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self.mlflow_run).data.params
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        for changed in (k for k, v in params.items() if k in logged and logged[k] != v):  # e.g. --resume --epochs
            self.client.set_tag(self.mlflow_run, f"vaekit.resumed_with.{changed}", params[changed])
        for start in range(0, len(new), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.mlflow_run, params=new[start:start + 100])

    def log_epoch(self, t: Training, epoch: int, scalars: dict[str, float], record: dict) -> None:
        from mlflow.entities import Metric

        stamp = int(t.state.wall_seconds * 1000)
        metrics = [Metric(key, float(value), stamp, epoch) for key, value in scalars.items()]
        for start in range(0, len(metrics), 1000):
            self.client.log_batch(self.mlflow_run, metrics=metrics[start:start + 1000])
        self.last = scalars

    def abort(self, t: Training) -> None:
        """An error ended training (in the loop or another subscriber): the MLflow run ends FAILED."""
        self.client.set_terminated(self.mlflow_run, status="FAILED")
        self.client = None

    def finish(self, t: Training, completed: bool) -> None:
        """FINISHED after the last epoch, early stopping or pruning (whole runs); KILLED by a signal
        or a non-finite value."""
        if self.last is not None:
            for key, value in self.last.items():
                self.client.log_metric(self.mlflow_run, f"final_{key}", float(value))
        self.client.log_metric(self.mlflow_run, "best_epoch", t.state.best_epoch)
        for path in [t.run.config_path, *sorted(t.run.results.glob("*.png"))]:
            if path.exists():
                self.client.log_artifact(self.mlflow_run, str(path))
        self.client.set_terminated(self.mlflow_run, status="FINISHED" if completed else "KILLED")
        self.client = None
