"""metrics.csv: the epoch records as a table, one row per epoch (lists such as kl_per_dim left out).

Rewritten from metrics.jsonl after every epoch, so it always agrees with the record (after a
--resume too) and gains a column when a later epoch logs a new key.
"""

import csv
import io

from vaekit.files import atomic_write_bytes
from vaekit.training.events import Training, register_callback
from vaekit.training.metric_logger import MetricLogger, scalar_fields


def records_to_csv(records: list[dict]) -> str:
    """The scalar fields of ``records`` as CSV text, columns in order of first appearance."""
    rows = [scalar_fields(record, text=True) for record in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


@register_callback
class MetricsCsv(MetricLogger):
    stage = "print"

    def log_epoch(self, t: Training, epoch: int, scalars: dict[str, float], record: dict) -> None:
        text = records_to_csv(t.run.read_metrics(quiet=True))
        atomic_write_bytes(t.run.path / "metrics.csv", lambda h: h.write(text.encode()))
