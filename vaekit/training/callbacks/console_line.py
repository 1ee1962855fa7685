"""The console: one line per epoch, the posterior-collapse warning, and why training stopped."""

from vaekit.evaluation import collapsed_dims
from vaekit.objectives import OBJECTIVES
from vaekit.training.events import Callback, StopReason, Training, register_callback


def epoch_line(epoch: int, epochs: int, record: dict, quality_keys: list[str], objective: str = "elbo") -> str:
    """One epoch's console line; β where the objective reads the β schedule, else the objective's name."""
    weight = f"β={record['beta']:.3f}" if OBJECTIVES.get(objective).uses_beta_schedule else objective
    parts = [f"epoch {epoch:>3}/{epochs}", weight,
             f"train {record['train_loss']:.3f}", f"val {record['val_loss']:.3f}",
             f"recon {record['val_recon']:.3f}", f"KL {record['val_kl']:.2f}"]
    for key in quality_keys:
        if record.get(f"val_{key}") is not None:
            parts.append(f"{key} {record[f'val_{key}']:.4f}")
    parts += [f"active {record['active_dims']}/{len(record['kl_per_dim'])}", f"{record['seconds']:.1f}s"]
    return "  ".join(parts)


@register_callback
class ConsoleLine(Callback):
    """The epoch line, and the collapse warning in every epoch where more dimensions have collapsed than
    when it was last given (a spatial latent leaves its cells over a static background unused epoch
    after epoch: the same warning each time would be noise)."""
    stage = "print"

    def __init__(self):
        self.warned_count = 0

    def on_epoch_end(self, t: Training, record: dict) -> None:
        cfg = t.config.train
        t.say(epoch_line(record["epoch"], cfg.epochs, record, t.domain.curve_metrics, t.config.objective.name))
        collapsed = collapsed_dims(record["kl_per_dim"], cfg.collapse_threshold)
        if len(collapsed) > self.warned_count:
            self.warned_count = len(collapsed)
            shown = ", ".join(map(str, collapsed[:12])) + (", …" if len(collapsed) > 12 else "")
            t.say(f"[yellow]warning: posterior collapse in {len(collapsed)}/{t.val['latent_dim']} dims "
                  f"(KL < {cfg.collapse_threshold} nats): {shown}[/yellow]")

    def on_stop(self, t: Training, reason: StopReason, message: str) -> None:
        if reason is StopReason.EARLY_STOPPING:  # errors and signals are printed by the command line
            t.say(message)
