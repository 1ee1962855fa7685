"""steps.jsonl: one JSON line every train.log_every_steps optimizer steps, with the step's loss terms
and the unclamped KL of each latent dimension (min, max, mean and every value) of its batch.

On --resume the lines of steps after last.pt's are dropped (last.pt counts the run's steps),
whatever log_every_steps is now, so the resumed run logs those
steps once; the first dropped step is left in
``t.shared['steps_dropped_from']`` for the TensorBoard sink, which hides its own copies of them.
"""

from vaekit.training.events import Callback, Training, register_callback


@register_callback
class StepsLog(Callback):
    stage = "record"

    def on_run_start(self, t: Training) -> None:
        if t.resume and t.writes and t.run.steps_path.is_file():
            dropped = t.run.truncate_metrics(t.state.global_step, path=t.run.steps_path, key="step")
            steps = [r["step"] for r in dropped if isinstance(r.get("step"), int)]
            if steps:
                t.shared["steps_dropped_from"] = min(steps)

    def on_step_end(self, t: Training, record: dict) -> None:
        if t.writes:
            t.run.append_metrics(record, path=t.run.steps_path)
