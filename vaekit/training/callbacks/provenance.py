"""provenance.json: what produced the run. One entry per training session (the first, then one per
--resume): vaekit, torch and Python versions, the git commit of the vaekit source when it is a git
checkout, the device, the precision, the command line and the time. `vaekit report` shows them.
Other entries beside the sessions (a sweep's study and trial, see vaekit.sweeps.trial) are kept."""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

import vaekit
from vaekit.training.events import Callback, Training, register_callback


def git_commit(folder: Path) -> str | None:
    """The commit checked out in ``folder``'s git work tree ('+dirty' with local changes), or None."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


def command_line() -> str:
    """This process's command line, with `python -m vaekit` or the script's path shown as `vaekit`."""
    argv = list(sys.argv)
    if argv and (Path(argv[0]).name == "vaekit" or Path(argv[0]).parent.name == "vaekit"):
        argv[0] = "vaekit"
    return " ".join(shlex.quote(a) for a in argv)


def session(t: Training) -> dict:
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "resumed_after_epoch": t.state.epoch if t.resume else None,
            "vaekit": vaekit.__version__, "torch": torch.__version__, "python": platform.python_version(),
            "git_commit": git_commit(Path(vaekit.__file__).parent), "device": str(t.step.device),
            "precision": t.config.train.precision, "workers": t.workers.world_size, "host": platform.node(),
            "command": command_line()}


@register_callback
class Provenance(Callback):
    stage = "log"

    def on_run_start(self, t: Training) -> None:
        if t.writes:
            t.run.write_provenance("sessions", t.run.read_provenance() + [session(t)])
