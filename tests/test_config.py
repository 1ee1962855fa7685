import pytest

from vaekit.config import Config, build_config, load_yaml, parse_set_option
from vaekit.errors import VaekitUsageError
from vaekit.experiment import resolve_config


def test_defaults_are_the_seed_spec():
    cfg = Config()
    # cosine_t_max None takes the run's epochs: 50 by default, as in the seed spec
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.cosine_t_max) == (128, 1e-3, 50, None)
    assert (cfg.train.min_lr, cfg.train.early_stopping_patience, cfg.beta.schedule) == (1e-5, 10, "three_phase")


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(VaekitUsageError, match=r"unknown config key 'train\.epoch' \(did you mean 'train\.epochs'\?\)"):
        build_config([("x.yaml", {"train": {"epoch": 3}})])


def test_unknown_section_is_refused():
    with pytest.raises(VaekitUsageError, match="'trian'.*'train'"):
        build_config([("x.yaml", {"trian": {}})])


def test_wrong_type_names_key_and_expectation():
    with pytest.raises(VaekitUsageError, match=r"'train\.batch_size': expected int"):
        build_config([("x.yaml", {"train": {"batch_size": "big"}})])


def test_out_of_range_value_is_refused():
    with pytest.raises(VaekitUsageError, match="recon_reduction"):
        build_config([("x", {"loss": {"recon_reduction": "median"}})])


def test_set_option_parses_yaml_values_into_nested_keys():
    assert parse_set_option("train.epochs=7") == {"train": {"epochs": 7}}
    assert build_config([("--set", parse_set_option("train.lr=3e-4"))]).train.lr == 3e-4  # YAML 1.1 quirk
    assert parse_set_option("model.options={hidden: 8}") == {"model": {"options": {"hidden": 8}}}
    with pytest.raises(VaekitUsageError, match="key=value"):
        parse_set_option("train.lr")


def test_layers_apply_in_order_and_beta_defaults_follow_the_schedule(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: 7\nbeta:\n  schedule: cyclical\n")
    cfg = resolve_config("arc", path, [("flags", {"train": {"epochs": 9}})])
    assert cfg.train.epochs == 9
    assert (cfg.beta.max_beta, cfg.beta.cycle_length) == (0.1, 20)
    assert cfg.data.path == "data/arc16.npz" and cfg.model.name == "conv2d"


def test_yaml_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(VaekitUsageError, match="bad.yaml"):
        load_yaml(bad)
    with pytest.raises(VaekitUsageError, match="not found"):
        load_yaml(tmp_path / "missing.yaml")


def test_a_config_file_with_a_key_written_twice_is_refused_with_both_lines(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  epochs: 5\n  lr: 0.001\n  epochs: 50\n")
    with pytest.raises(VaekitUsageError, match=r"'epochs' is written twice \(lines 2 and 4\); keep one"):
        resolve_config("arc", path, [])
