"""Model builder: the report's two models exactly, and the options of the model section."""

from __future__ import annotations

import pytest

from cnnlab.config.files import load_config
from cnnlab.errors import ConfigError
from cnnlab.training.model import build_model, format_layer_table, layer_table, trainable_params

BASELINE_TABLE = [  # report Figure 1
    ("block1_conv", "Conv2D", [32, 32, 8], 224),
    ("block1_dropout", "Dropout", [32, 32, 8], 0),
    ("block1_pool", "MaxPooling2D", [16, 16, 8], 0),
    ("flatten", "Flatten", [2048], 0),
    ("dense1", "Dense", [64], 131_136),
    ("dense1_dropout", "Dropout", [64], 0),
    ("output", "Dense", [10], 650),
    ("output_dropout", "Dropout", [10], 0),
]
BEST_TABLE = [  # report section 6, grid-search winner
    ("block1_conv", "Conv2D", [32, 32, 8], 224),
    ("block1_pool", "MaxPooling2D", [16, 16, 8], 0),
    ("block2_conv", "Conv2D", [16, 16, 16], 1_168),
    ("block2_pool", "MaxPooling2D", [8, 8, 16], 0),
    ("block3_conv", "Conv2D", [8, 8, 32], 4_640),
    ("block3_pool", "MaxPooling2D", [4, 4, 32], 0),
    ("flatten", "Flatten", [512], 0),
    ("dense1", "Dense", [64], 32_832),
    ("dense1_dropout", "Dropout", [64], 0),
    ("output", "Dense", [10], 650),
]


@pytest.mark.parametrize(("name", "table", "params"),
                         [("baseline", BASELINE_TABLE, 132_010), ("best", BEST_TABLE, 39_514)])
def test_reference_models_match_the_report(name: str, table: list, params: int) -> None:
    cfg = load_config(name)
    model = build_model(cfg.model, (32, 32, 3), 10)
    rows = [(r["name"], r["type"], r["output_shape"], r["params"]) for r in layer_table(model)]
    assert rows == table
    assert trainable_params(model) == params
    assert f"Trainable params: {params:,}" in format_layer_table(model)


def test_activations_and_rates_in_reference_models() -> None:
    model = build_model(load_config("baseline").model, (32, 32, 3), 10)
    assert model.get_layer("block1_conv").activation.__name__ == "relu"
    assert model.get_layer("output").activation.__name__ == "softmax"
    assert model.get_layer("dense1_dropout").rate == 0.0


def test_batch_norm_l2_dropout_and_per_block_options() -> None:
    cfg = load_config(None, ["model.filters=[4, 6]", "model.kernel_size=[5, 3]",
                             "model.padding=[valid, same]", "model.pool_size=[2, 0]",
                             "model.batch_norm=true", "model.l2=0.001",
                             "model.conv_dropout=0.25", "model.dense=[16, 8]",
                             "model.pooling=average"]).model
    model = build_model(cfg, (28, 28, 1), 3)
    names = [layer.name for layer in model.layers]
    assert names == ["block1_conv", "block1_bn", "block1_act", "block1_dropout", "block1_pool",
                     "block2_conv", "block2_bn", "block2_act", "block2_dropout",
                     "flatten", "dense1", "dense2", "output"]
    assert model.get_layer("block1_pool").output.shape[1:] == (12, 12, 4)  # (28-5+1)//2
    assert model.get_layer("block1_conv").kernel_regularizer is not None
    assert model.get_layer("block1_pool").__class__.__name__ == "AveragePooling2D"
    assert model.layers[-1].output.shape[1:] == (3,)
    # batch-norm has 2 trainable (gamma, beta) and 2 non-trainable (mean, var) per channel
    conv = 5 * 5 * 1 * 4 + 4 + 3 * 3 * 4 * 6 + 6
    dense = 12 * 12 * 6 * 16 + 16 + 16 * 8 + 8 + 8 * 3 + 3
    assert trainable_params(model) == conv + 2 * (4 + 6) + dense


def test_kernel_or_pool_larger_than_input_is_a_config_error() -> None:
    deep = load_config(None, ["model.filters=[8, 8, 8, 8, 8, 8]"]).model
    with pytest.raises(ConfigError, match="model.pool_size: block 6 pool 2 is larger than its 1x1"):
        build_model(deep, (32, 32, 3), 10)
    valid = load_config(None, ["model.kernel_size=40", "model.padding=valid"]).model
    with pytest.raises(ConfigError, match="model.kernel_size: block 1 kernel 40 is larger"):
        build_model(valid, (32, 32, 3), 10)
