"""How a splat model sees and predicts the rotation θ: the ``rotation`` option of the conv1d models.

θ and θ + π are the same ellipse, and the stored θ lies in [0, π). Two encodings are registered:

- ``embedding`` (our default): θ becomes (cos 2θ, sin 2θ), two channels; the error is 1 − cos 2Δθ
  (0 when right, 1 on average for a guess unrelated to θ, 2 at the worst). Periodic, so a θ just
  above 0 and one just below π are neighbours, as the ellipses are.
- ``angle`` (the seed's, as its configs ran): θ is one channel, z-scored like every other channel
  with the training split's mean and standard deviation (``theta_norm``), scored by squared error.
  A fitted θ near 0 and one near π are the same ellipse but 2–3 standard deviations apart.

Each encoding maps stored parameters to the model's channel layout, scores the rotation channels and
turns the model's rotation output back into an angle. The other groups are the same in both layouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vaekit.data_formats import SPLAT_GROUPS

ROT = SPLAT_GROUPS["rot"][0]
# θ uniform on [0, π): the default normalisation when the corpus' own is not given.
UNIFORM_THETA_NORM = (math.pi / 2, math.pi / math.sqrt(12))


@dataclass(frozen=True)
class RotationEncoding:
    """One way of putting θ into the model's channels (see the module docstring)."""

    name: str
    rot_channels: int

    @property
    def groups(self) -> dict[str, list[int]]:
        """Channels of each parameter group in the model's layout."""
        r = self.rot_channels
        return {"xy": [0, 1], "scale": [2, 3], "rot": list(range(ROT, ROT + r)),
                "feat": list(range(ROT + r, ROT + r + 3))}

    @property
    def channels(self) -> int:
        return ROT + self.rot_channels + 3

    def encode(self, params: torch.Tensor, theta_norm) -> torch.Tensor:
        """(B, 8, K) normalised parameters (θ in radians) -> (B, channels, K)."""
        raise NotImplementedError

    def error(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, K) rotation error of ``output`` against the encoded ``target``."""
        raise NotImplementedError

    def angle(self, output: torch.Tensor, theta_norm) -> torch.Tensor:
        """(B, K) θ in radians from the model's rotation channels."""
        raise NotImplementedError

    def comparable(self, output: torch.Tensor) -> torch.Tensor:
        """The rotation channels in the target's encoding (e.g. a unit-length embedding)."""
        return output[:, ROT:ROT + self.rot_channels]


class Embedding(RotationEncoding):
    def encode(self, params, theta_norm):
        theta = params[:, ROT:ROT + 1]
        return torch.cat([params[:, :ROT], torch.cos(2 * theta), torch.sin(2 * theta), params[:, ROT + 1:]], dim=1)

    def error(self, output, target):
        c, s = output[:, ROT], output[:, ROT + 1]
        norm = torch.sqrt(c.pow(2) + s.pow(2) + 1e-8)
        return 1 - (c * target[:, ROT] + s * target[:, ROT + 1]) / norm

    def angle(self, output, theta_norm):
        return torch.remainder(0.5 * torch.atan2(output[:, ROT + 1], output[:, ROT]), math.pi)

    def comparable(self, output):
        rot = output[:, ROT:ROT + 2]
        return rot / torch.sqrt(rot.pow(2).sum(dim=1, keepdim=True) + 1e-8)


class Angle(RotationEncoding):
    def encode(self, params, theta_norm):
        mean, std = theta_norm
        return torch.cat([params[:, :ROT], (params[:, ROT:ROT + 1] - mean) / std, params[:, ROT + 1:]], dim=1)

    def error(self, output, target):
        return (output[:, ROT] - target[:, ROT]).pow(2)

    def angle(self, output, theta_norm):
        mean, std = theta_norm
        return output[:, ROT] * std + mean  # not wrapped: the seed's pipeline did not know θ is periodic


ROTATION_ENCODINGS: dict[str, RotationEncoding] = {
    "embedding": Embedding("embedding", rot_channels=2),
    "angle": Angle("angle", rot_channels=1),
}
