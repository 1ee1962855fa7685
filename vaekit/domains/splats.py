"""2D Gaussian splats: a differentiable renderer, a batched fitter on a fixed grid of cells in Morton order.

A scene is K anisotropic Gaussians, each with 8 parameters (channel order of the corpus):

    0-1  x, y            centre, in [0, 1] image coordinates (x right, y down)
    2-3  log_sx, log_sy  log of the standard deviations along the Gaussian's own axes (image units)
    4    theta           rotation of those axes, in [0, π): an ellipse is the same under θ + π
    5-7  r, g, b         colour (the feature), added where the Gaussian lies

The image is the additive blend I(p) = Σ_k c_k · exp(−½ (p − μ_k)ᵀ Σ_k⁻¹ (p − μ_k)), with
Σ_k = R(θ_k) diag(sx², sy²) R(θ_k)ᵀ, each splat evaluated within a window around its centre.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from vaekit.data_formats import SPLAT_GROUPS as GROUPS  # noqa: F401  (the channel layout, shared with models)
from vaekit.data_formats import SPLAT_PARAMS as NUM_PARAMS  # noqa: F401

WINDOW_RADIUS = 3  # pixels: each splat is evaluated on the 7×7 pixels around its centre


def render(params: torch.Tensor, height: int, width: int, radius: int = WINDOW_RADIUS) -> torch.Tensor:
    """Render (B, K, 8) splat parameters to (B, H, W, 3) images (differentiable).

    Each splat is evaluated on the (2r+1)² pixels around its centre and added into the image with
    a scatter: the cost is K·(2r+1)² per image instead of K·H·W. Mass beyond r pixels is dropped;
    fitted splats are a few pixels wide (initial σ = half the cell spacing: 2 × 1 pixels for 512
    splats on 64 × 64).
    """
    batch, count, _ = params.shape
    centre, log_scale, theta, colour = params[..., 0:2], params[..., 2:4], params[..., 4], params[..., 5:8]
    offsets = torch.arange(-radius, radius + 1, device=params.device)
    oy, ox = torch.meshgrid(offsets, offsets, indexing="ij")
    centre_px = torch.stack([(centre[..., 0] * width).floor(), (centre[..., 1] * height).floor()], -1).long()
    px = (centre_px[..., 0, None] + ox.reshape(-1)).clamp(0, width - 1)  # (B, K, W²)
    py = (centre_px[..., 1, None] + oy.reshape(-1)).clamp(0, height - 1)
    inside = ((centre_px[..., 0, None] + ox.reshape(-1)) == px) & ((centre_px[..., 1, None] + oy.reshape(-1)) == py)
    dx = (px + 0.5) / width - centre[..., 0:1]
    dy = (py + 0.5) / height - centre[..., 1:2]
    cos, sin = torch.cos(theta)[..., None], torch.sin(theta)[..., None]
    u = dx * cos + dy * sin  # the offset along the splat's own axes (rotated by −θ)
    v = -dx * sin + dy * cos
    inv_var = torch.exp(-2 * log_scale)
    weight = torch.exp(-0.5 * (u.pow(2) * inv_var[..., 0:1] + v.pow(2) * inv_var[..., 1:2])) * inside
    contributions = weight[..., None] * colour[:, :, None, :]  # (B, K, W², 3)
    index = (py * width + px).reshape(batch, -1, 1).expand(-1, -1, 3)
    image = torch.zeros(batch, height * width, 3, device=params.device, dtype=params.dtype)
    image = image.scatter_add(1, index, contributions.reshape(batch, -1, 3))
    return image.view(batch, height, width, 3)


def grid_shape(count: int, height: int, width: int) -> tuple[int, int]:
    """(rows, cols) with rows · cols == count, as close to square cells on the image as count allows
    (512 splats on a square image: 32 rows × 16 columns)."""
    ideal_rows = math.sqrt(count * height / width)
    divisors = [r for r in range(1, count + 1) if count % r == 0]
    rows = min(divisors, key=lambda r: abs(math.log(r / ideal_rows)))
    return rows, count // rows


def cell_layout(count: int, height: int, width: int) -> tuple[torch.Tensor, tuple[float, float]]:
    """The (count, 2) centres of a rows × cols grid of cells over the image, in Morton order, and
    the cell spacing (x, y) in image units.

    Splat k of every scene starts in cell k of this list, so a sequence index means the same place
    in every image: the thing Conv1d over the sequence relies on.
    """
    rows, cols = grid_shape(count, height, width)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    centres = torch.stack([(c.reshape(-1) + 0.5) / cols, (r.reshape(-1) + 0.5) / rows], dim=1)
    return centres[morton_order(centres)], (1 / cols, 1 / rows)


def initial_params(images: torch.Tensor, centres: torch.Tensor, spacing: tuple[float, float]) -> torch.Tensor:
    """One splat per cell of ``cell_layout``'s (centres, spacing), coloured by the pixel under the
    cell's centre.

    Each splat's standard deviations are half the cell spacing, so neighbours overlap a little and
    the first render is already a blurred copy of the image: the fit only refines it.
    """
    batch, height, width, _ = images.shape
    count, (spacing_x, spacing_y) = centres.shape[0], spacing
    px = (centres[:, 0] * width).long().clamp(0, width - 1)
    py = (centres[:, 1] * height).long().clamp(0, height - 1)
    colour = images[:, py, px]  # (B, K, 3)
    log_scale = torch.log(torch.tensor([0.5 * spacing_x, 0.5 * spacing_y])).expand(batch, count, 2)
    theta = torch.zeros(batch, count, 1)
    # Colour is scaled down by the overlap of neighbours so that the blend starts near the image.
    overlap = 2 * math.pi * 0.25
    return torch.cat([centres.expand(batch, count, 2), log_scale, theta, colour / overlap], dim=-1)


def canonical(params: torch.Tensor) -> torch.Tensor:
    """Keep θ in [0, π) and centres inside the image (the fit may wander slightly)."""
    out = params.clone()
    out[..., 4] = torch.remainder(out[..., 4], math.pi)
    out[..., 0:2] = out[..., 0:2].clamp(0, 1)
    return out


def psnr(images: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of [0, 1] images."""
    mse = (images.clamp(0, 1) - reference).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(1.0 / mse)


def fit_splats(images: torch.Tensor, count: int = 512, steps: int = 150, lr: float = 0.01,
               on_step: Callable[[int], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``count`` splats to each (B, H, W, 3) image in [0, 1] by Adam on the pixel MSE.

    Splat k stays within one cell spacing of the centre of its cell k (the centre is the cell's
    plus spacing · tanh(offset)), so that a sequence index keeps meaning the same place in every
    image; scale, rotation and colour are free. Returns the canonical (B, count, 8) parameters, in
    the Morton order of their cells, and each fit's PSNR against its image. Deterministic.
    """
    height, width = images.shape[1:3]
    centres, spacing = cell_layout(count, height, width)
    start = initial_params(images, centres, spacing)
    spacing = torch.tensor(spacing)
    offset = torch.zeros(*start.shape[:2], 2, requires_grad=True)
    shape_and_colour = start[..., 2:].clone().requires_grad_(True)

    def current() -> torch.Tensor:
        return torch.cat([centres + spacing * torch.tanh(offset), shape_and_colour], dim=-1)

    optimizer = torch.optim.Adam([offset, shape_and_colour], lr=lr)
    for step in range(steps):
        loss = (render(current(), height, width) - images).pow(2).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if on_step:
            on_step(step)
    with torch.no_grad():
        fitted = canonical(current())
        quality = psnr(render(fitted, height, width), images)
    return fitted, quality


def morton_order(xy: torch.Tensor, bits: int = 10) -> torch.Tensor:
    """Indices that sort (…, K, 2) points in [0, 1]² along the Z-order curve (x bits interleaved
    with y bits), so that neighbours in the sequence are neighbours in the image."""
    scaled = (xy.clamp(0, 1) * (2**bits - 1)).long()
    code = torch.zeros(scaled.shape[:-1], dtype=torch.long, device=xy.device)
    for bit in range(bits):
        code |= ((scaled[..., 0] >> bit) & 1) << (2 * bit)
        code |= ((scaled[..., 1] >> bit) & 1) << (2 * bit + 1)
    return code.argsort(dim=-1)
