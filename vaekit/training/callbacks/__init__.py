"""The built-in subscribers of the training loop, one module each; importing the package registers them.

Each declares its ``stage`` (``vaekit.training.events.STAGES``): the console, train.log and provenance
start first (so that they see every line), the non-finite guard checks the weights before anything is
saved, then the record is written, the best checkpoint, the stopping decision, last.pt (which saves
that decision), the progress bar, the console line, the pictures and curves, and the other sinks. The
order of the modules does not matter.
"""

from vaekit.registry import import_submodules

import_submodules(__name__, __path__)
