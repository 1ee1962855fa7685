"""The built-in subscribers of the training loop, one module each; importing registers them.

Each declares its ``stage`` (``vaekit.training.events.STAGES``): the console log starts first (so that
it sees every line), the non-finite guard checks the weights before anything is saved, then the
record is written, the best checkpoint, the stopping decision, last.pt (which saves that decision),
the pictures and curves, the console line and the other sinks. The imports' order does not matter.
"""

from vaekit.training.callbacks import train_log  # noqa: F401
from vaekit.training.callbacks import provenance  # noqa: F401
from vaekit.training.callbacks import nonfinite_guard  # noqa: F401
from vaekit.training.callbacks import metrics_log  # noqa: F401
from vaekit.training.callbacks import steps_log  # noqa: F401
from vaekit.training.callbacks import best_checkpoint  # noqa: F401
from vaekit.training.callbacks import early_stopping  # noqa: F401
from vaekit.training.callbacks import last_checkpoint  # noqa: F401
from vaekit.training.callbacks import epoch_checkpoints  # noqa: F401
from vaekit.training.callbacks import console_line  # noqa: F401
from vaekit.training.callbacks import metrics_csv  # noqa: F401
from vaekit.training.callbacks import curves  # noqa: F401
from vaekit.training.callbacks import pictures  # noqa: F401
from vaekit.training.callbacks import tensorboard  # noqa: F401
from vaekit.training.callbacks import mlflow_sink  # noqa: F401
