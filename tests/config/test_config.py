"""Config loading, overrides and one-line validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cnnlab.config.files import load_config, overrides_to_dict, parse_override
from cnnlab.config.schema import Config, config_from_dict
from cnnlab.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_file_and_overrides_merge(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\nmodel:\n  filters: [4, 8]\n")
    cfg = load_config(path, ["train.batch_size=64", "model.kernel_size=[3, 5]"])
    assert cfg.name == "c"  # from the file name
    assert cfg.train.epochs == 3 and cfg.train.batch_size == 64
    assert cfg.model.filters == (4, 8) and cfg.model.kernel_size == (3, 5)
    assert cfg.train.learning_rate == 0.01  # default kept
    assert cfg.data.source == "cifar10"


def test_builtin_configs_resolve_by_name_and_path() -> None:
    best = load_config("best")
    assert best.model.filters == (8, 16, 32)
    assert best.train.optimizer == "adam" and best.train.learning_rate == 0.001
    assert load_config(Path(__file__).parents[2] / "configs" / "best.yaml") == best
    baseline = load_config("baseline")
    assert baseline.train.optimizer == "sgd" and baseline.train.momentum == 0.0


def test_resolved_yaml_round_trips() -> None:
    cfg = load_config("best", ["train.epochs=7"])
    again = config_from_dict(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg
    assert "filters: [8, 16, 32]" in cfg.to_yaml()


def test_momentum_resolution() -> None:
    assert load_config(None, ["train.optimizer=sgd_momentum"]).train.momentum == 0.9
    assert load_config(None, ["train.optimizer=sgd"]).train.momentum == 0.0
    assert load_config(None, ["train.optimizer=adam"]).train.momentum is None
    with pytest.raises(ConfigError, match="train.momentum.*adam"):
        load_config(None, ["train.optimizer=adam", "train.momentum=0.5"])


def test_scientific_notation_strings_are_numbers() -> None:
    # PyYAML reads 1e-3 (no dot) as a string; users write it that way.
    assert load_config(None, ["train.learning_rate=1e-3"]).train.learning_rate == 0.001


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.batch_sise=3"], "unknown key 'train.batch_sise'; did you mean 'train.batch_size'"),
        (["lerning_rate=3"], "did you mean 'train.learning_rate'"),
        (["train.batch_size=0"], "train.batch_size: got 0; expected an integer >= 1"),
        (["train.batch_size=abc"], "train.batch_size: got 'abc'"),
        (["train.batch_size=true"], "train.batch_size: got True"),
        (["train.learning_rate=-1"], "train.learning_rate: got -1; expected a number >= 0"),
        (["model.dense_dropout=1.0"],
         "model.dense_dropout: got 1.0; expected a number >= 0.0 and < 1"),
        (["model.filters=[]"], "model.filters: got []; expected a non-empty list"),
        (["train.optimizer=adagrad"], "expected one of sgd, sgd_momentum, adam"),
        (["model.kernel_size=[3, 3]"],
         "model.kernel_size: got [3, 3] (2 entries) but model.filters has 1"),
        (["data.source=mnist"], "data.source: got 'mnist'; expected one of cifar10, imagefolder"),
        (["train.epochs"], "--set 'train.epochs': expected KEY=VALUE"),
        (["train.epochs=[1"], "--set train.epochs: cannot read value"),
        (["data=3"], "'data' must be a mapping"),
    ],
)
def test_bad_values_name_key_value_and_allowed(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ntrain:\n  epochs: [1, 2\n  batch_size: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml line \d+: YAML syntax error"):
        load_config(path)


def test_not_a_mapping_and_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))
    with pytest.raises(ConfigError, match="unknown key 'trian'; did you mean 'train'"):
        load_config(write(tmp_path, "trian:\n  epochs: 1\n"))


def test_missing_config_file_lists_builtins() -> None:
    with pytest.raises(ConfigError, match="no such config file.*baseline, best"):
        load_config("nope/missing.yaml")


def test_override_parsing() -> None:
    assert parse_override("model.filters=[8,16]") == ("model.filters", [8, 16])
    assert parse_override("data.path=") == ("data.path", None)
    assert overrides_to_dict({"train.epochs": 2, "seed": 1}) == {"train": {"epochs": 2}, "seed": 1}


def test_config_is_frozen() -> None:
    cfg = Config()
    with pytest.raises(AttributeError):
        cfg.seed = 3  # type: ignore[misc]


def test_config_reference_is_generated_from_the_schema_and_the_docs_match() -> None:
    from click.testing import CliRunner

    from cnnlab.cli import main
    from cnnlab.config.files import reference
    from cnnlab.config.schema import ALL_KEYS, SECTIONS

    printed = CliRunner().invoke(main, ["config", "--keys"])
    assert printed.exit_code == 0 and printed.output == reference()
    rows = [line for line in reference().splitlines()[2:]]
    assert [row.split("`")[1] for row in rows] == [k for k in ALL_KEYS if k not in SECTIONS]
    assert "| `train.batch_size` | `32` | an integer >= 1 | batch size |" in rows
    docs = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert reference() in docs, "docs/config.md drifted: paste `cnnlab config --keys` over it"
