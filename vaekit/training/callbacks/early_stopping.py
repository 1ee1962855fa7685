"""Early stopping on the validation loss (train.early_stopping_patience, train.early_stopping_start)."""

from vaekit.training.events import Callback, StopReason, Training, register_callback


@register_callback
class EarlyStopping(Callback):
    stage = "decide"

    def on_epoch_end(self, t: Training, record: dict) -> None:
        state, cfg, epoch = t.state, t.config.train, record["epoch"]
        start = cfg.early_stopping_start
        # From the start epoch on, the best val loss is the best since then: while β rises, every
        # earlier val loss is lower than anything after the ramp, and patience would end at once.
        restarts = epoch >= start and state.best_loss_epoch < start
        if record["val_loss"] < state.best_val_loss or restarts:
            state.best_val_loss, state.best_loss_epoch, state.epochs_without_improvement = record["val_loss"], epoch, 0
        else:
            state.epochs_without_improvement += 1
        patience = cfg.early_stopping_patience
        if patience and epoch >= start and state.epochs_without_improvement >= patience:
            state.stopped_early = True
        state.stopped_early = t.workers.main_decides(state.stopped_early)
        if state.stopped_early:
            t.request_stop(StopReason.EARLY_STOPPING, f"Early stopping after epoch {epoch}: no better val loss for "
                                              f"{patience} epochs (best: epoch {state.best_loss_epoch}).")
