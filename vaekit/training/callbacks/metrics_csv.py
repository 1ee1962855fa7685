"""metrics.csv: the epoch records as a table, one row per epoch (lists such as kl_per_dim left out).

Rewritten from metrics.jsonl after every epoch, so it always agrees with the record (after a
--resume too) and gains a column when a later epoch logs a new key.
"""

import csv
import io

from vaekit.files import atomic_write_bytes
from vaekit.training.events import Callback, Training, register_callback


def records_to_csv(records: list[dict]) -> str:
    """The scalar fields of ``records`` as CSV text, columns in order of first appearance."""
    columns: dict[str, None] = {}
    for record in records:
        columns.update((k, None) for k, v in record.items() if not isinstance(v, (list, dict)))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    return out.getvalue()


@register_callback
class MetricsCsv(Callback):
    stage = "print"

    def on_epoch_end(self, t: Training, record: dict) -> None:
        if t.writes:
            text = records_to_csv(t.run.read_metrics(quiet=True))
            atomic_write_bytes(t.run.path / "metrics.csv", lambda h: h.write(text.encode()))
