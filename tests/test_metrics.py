"""Each metric declared once: checkpoint selection, sweeps and Pareto fronts rank it the same way."""

from __future__ import annotations

import pytest

from vaekit.domains import get_domain, list_domains
from vaekit.metrics import COMMON, Metric
from vaekit.models import MODELS
from vaekit.sweeps.objective import objective_metric_names, resolve_objective
from vaekit.sweeps.report import pareto_front
from vaekit.training.loop import selection_score


def pairs():
    return [(d, m) for d in list_domains() for m in get_domain(d).fitting_models()]


@pytest.mark.parametrize("domain_name, model_name", pairs())
def test_selection_and_sweeps_rank_every_metric_in_its_declared_direction(domain_name, model_name):
    domain, model_cls = get_domain(domain_name), MODELS.get(model_name)
    for name in objective_metric_names(domain, model_cls):
        declared = domain.metric(name)
        assert isinstance(declared, Metric), f"{domain_name}: '{name}' has no declaration"
        assert resolve_objective(domain, model_cls, name, None).direction == declared.direction
        if name in domain.selection_metric_names(model_cls):
            better, worse = (2.0, 1.0) if declared.higher_is_better else (1.0, 2.0)
            assert selection_score({name: better}, name, domain) > selection_score({name: worse}, name, domain)


def test_ternary_per_pathway_coverage_and_kl_min_are_maximised_as_selection_maximises_them():
    ternary, dual = get_domain("ternary"), MODELS.get("ternary_dual")
    assert resolve_objective(ternary, dual, "reconstruction_coverage_A", None).direction == "max"
    assert resolve_objective(ternary, dual, "heldout_coverage_B", None).direction == "max"
    assert resolve_objective(ternary, dual, "kl_min", None).direction == "max"
    assert selection_score({"kl_min": 0.5}, "kl_min", ternary) > selection_score({"kl_min": 0.1}, "kl_min", ternary)


def test_a_lower_is_better_metric_is_selectable_as_it_is():
    splats = get_domain("gaussians")
    assert "recon_rot" in splats.selection_metrics
    assert selection_score({"recon_rot": 0.4}, "recon_rot", splats) > selection_score({"recon_rot": 0.6}, "recon_rot",
                                                                                        splats)


def test_the_pareto_front_reads_directions_from_the_declarations():
    rows = [{"results": {"test": {"pixel_accuracy": a, "kl": kl}}, "id": i}
            for i, (a, kl) in enumerate([(0.9, 10.0), (0.8, 5.0), (0.7, 12.0)])]
    front = pareto_front(rows, "pixel_accuracy", "kl", get_domain("arc"))
    assert [r["id"] for r in front] == [0, 1]  # accuracy up, KL down; the third is beaten on both


def test_no_metric_is_declared_twice():
    assert len({m.key for m in COMMON}) == len(COMMON)
    for name in list_domains():
        keys = [m.key for m in get_domain(name).metrics]
        assert len(keys) == len(set(keys)) and not set(keys) & {m.key for m in COMMON if m.selectable}


def test_the_evaluation_blocks_lines_are_the_metrics_that_declare_a_target_in_their_direction():
    from vaekit.domains import get_domain

    gaussians = get_domain("gaussians")
    assert [t.metric for t in gaussians.targets] == ["recon_rot", "recon_feat"]
    assert all(t.higher_is_better is False for t in gaussians.targets)  # a maximum, as the metric ranks
    assert gaussians.targets[0].met(0.5) is True and gaussians.targets[0].met(0.7) is False
    arc = get_domain("arc").targets[0]
    assert (arc.label, arc.fmt) == ("Pixel-wise Accuracy", "{:.1%}")  # the block as the specification writes it


def test_the_validation_loss_breaks_a_tie_of_the_named_selection_metric():
    arc = get_domain("arc")
    tied_worse_loss = {"pixel_accuracy": 0.8, "loss": 150.0}
    tied_better_loss = {"pixel_accuracy": 0.8, "loss": 120.0}
    assert selection_score(tied_better_loss, "pixel_accuracy", arc) > selection_score(tied_worse_loss, "pixel_accuracy",
                                                                                        arc)
    assert selection_score({"pixel_accuracy": 0.9, "loss": 150.0}, "pixel_accuracy", arc) > \
        selection_score(tied_better_loss, "pixel_accuracy", arc)
    assert selection_score({"loss": 2.0}, "loss", arc) == [-2.0]  # named already: not ranked twice
