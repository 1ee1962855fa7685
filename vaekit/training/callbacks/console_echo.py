"""The console: every line the training tells the user (``Training.say``), on the caller's console
(the terminal for `vaekit train`; a quiet one for library calls and the workers besides the main)."""

from vaekit.training.events import Callback, Training, register_callback


@register_callback
class ConsoleEcho(Callback):
    stage = "log"

    def on_message(self, t: Training, text: str, markup: bool) -> None:
        t.console.print(text, markup=markup, soft_wrap=True)
