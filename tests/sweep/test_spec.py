"""Sweep files expanded into runs, their one-line errors, and the decisions made before
any run (how many at once, which backend options): no training, no TensorFlow."""

from __future__ import annotations

import pytest

from cnnlab.config.schema import Config, config_from_dict
from cnnlab.errors import ConfigError
from cnnlab.sweep import capacity
from cnnlab.sweep.executors import LocalOptions, local_options
from cnnlab.sweep.spec import describe, sweep_from_dict

BASE = {"model": {"filters": [8]}, "train": {"optimizer": "sgd", "epochs": 2}}


# --- expansion ---

def test_axes_expand_to_their_product_with_the_last_axis_fastest() -> None:
    sweep = sweep_from_dict({"base": BASE, "axes": {"train.batch_size": [16, 32],
                                                    "train.learning_rate": [0.1, 0.01, 1e-5]}})
    assert [(r.index, r.id) for r in sweep.runs] == [
        (1, "001-batch_size=16-learning_rate=0.1"), (2, "002-batch_size=16-learning_rate=0.01"),
        (3, "003-batch_size=16-learning_rate=1e-05"), (4, "004-batch_size=32-learning_rate=0.1"),
        (5, "005-batch_size=32-learning_rate=0.01"), (6, "006-batch_size=32-learning_rate=1e-05")]
    assert [(r.config.train.batch_size, r.config.train.learning_rate) for r in sweep.runs] == [
        (16, 0.1), (16, 0.01), (16, 1e-5), (32, 0.1), (32, 0.01), (32, 1e-5)]
    first = sweep.runs[0]
    assert first.overrides == {"train.batch_size": 16, "train.learning_rate": 0.1}
    assert (first.variant, first.arm, first.repeat) == (None, first.id, 0)
    assert first.config.name == "001-batch_size-16-learning_rate-0.1"  # Keras allows no "="
    assert sweep.params == sweep.varying == ["train.batch_size", "train.learning_rate"]
    assert sweep.arms == [r.id for r in sweep.runs]


def test_run_names_spell_lists_none_and_booleans() -> None:
    sweep = sweep_from_dict({"base": BASE, "axes": {
        "data.image_size": [[24, 24], None], "model.batch_norm": [True, False]}})
    assert [r.id for r in sweep.runs] == [
        "001-image_size=24_24-batch_norm=true", "002-image_size=24_24-batch_norm=false",
        "003-image_size=none-batch_norm=true", "004-image_size=none-batch_norm=false"]
    assert [r.config.data.image_size for r in sweep.runs] == [(24, 24), (24, 24), None, None]


def test_overrides_take_precedence_base_set_cli_variant_axis() -> None:
    """As docs/sweeps.md orders them, lowest first."""
    sweep = sweep_from_dict(
        {"base": {**BASE, "train": {"epochs": 2, "learning_rate": 0.1, "batch_size": 8}},
         "set": {"train": {"epochs": 3, "momentum": 0.5}},
         "variants": {"long": {"train.epochs": 4, "train.batch_size": 64}, "plain": {}},
         "axes": {"train.batch_size": [16]}},
        overrides={"train.momentum": 0.9})
    found = {r.variant: (r.config.train.epochs, r.config.train.batch_size,
                         r.config.train.momentum, r.config.train.learning_rate)
             for r in sweep.runs}
    assert found == {"long": (4, 16, 0.9, 0.1), "plain": (3, 16, 0.9, 0.1)}
    assert [r.id for r in sweep.runs] == ["001-long-batch_size=16", "002-plain-batch_size=16"]
    assert sweep.runs[0].overrides == {"train.epochs": 4, "train.batch_size": 16}
    assert sweep.set == {"train.epochs": 3, "train.momentum": 0.9}
    assert sweep.params == ["variant", "train.epochs", "train.batch_size"]


def test_cli_overrides_as_text_or_mapping_give_the_same_sweep() -> None:
    raw = {"base": BASE, "axes": {"train.batch_size": [16, 32]}}
    as_text = sweep_from_dict(raw, overrides=["train.epochs=5", "model.dense=[32]"])
    as_mapping = sweep_from_dict(raw, overrides={"train.epochs": 5, "model.dense": [32]})
    assert as_text.record() == as_mapping.record()
    assert {(r.config.train.epochs, r.config.model.dense) for r in as_text.runs} == {(5, (32,))}


def test_repeats_train_each_arm_with_the_next_seeds_on_one_split() -> None:
    sweep = sweep_from_dict({"base": BASE, "set": {"seed": 7}, "repeats": 3,
                             "variants": {"a": {}, "b": {"train.epochs": 1}}})
    assert [(r.index, r.id, r.arm, r.repeat) for r in sweep.runs] == [
        (1, "001-a-r0", "001-a", 0), (2, "001-a-r1", "001-a", 1), (3, "001-a-r2", "001-a", 2),
        (4, "002-b-r0", "002-b", 0), (5, "002-b-r1", "002-b", 1), (6, "002-b-r2", "002-b", 2)]
    assert [r.config.seed for r in sweep.runs] == [7, 8, 9, 7, 8, 9]
    assert {r.config.data.split_seed for r in sweep.runs} == {7}
    assert sweep.arms == ["001-a", "002-b"] and sweep.repeats == 3
    assert describe(sweep).splitlines()[0] == (
        "sweep sweep (sweep): 6 runs (2 arms x 3 repeats, seeds 7..9, one split; equivalence "
        "margin 0.01)")
    assert [(r["id"], r["arm"], r["repeat"]) for r in sweep.record()["runs"]][:2] == [
        ("001-a-r0", "001-a", 0), ("001-a-r1", "001-a", 1)]


def test_repeats_keep_a_split_seed_given_and_the_argument_replaces_the_file() -> None:
    raw = {"base": BASE, "set": {"data.split_seed": 3}, "axes": {"seed": [1]}, "repeats": 4}
    once = sweep_from_dict(raw, repeats=1)
    assert [(r.id, r.config.seed, r.config.data.split_seed) for r in once.runs] == [
        ("001-seed=1", 1, 3)]
    raw = {"base": BASE, "set": {"data.split_seed": 3}, "axes": {"train.epochs": [1]}}
    twice = sweep_from_dict(raw, repeats=2)
    assert [(r.id, r.config.seed, r.config.data.split_seed) for r in twice.runs] == [
        ("001-epochs=1-r0", 0, 3), ("001-epochs=1-r1", 1, 3)]


def test_one_repeat_leaves_seed_and_split_as_configured() -> None:
    sweep = sweep_from_dict({"base": BASE, "axes": {"seed": [4, 5]}})
    assert [(r.id, r.config.seed, r.config.data.split_seed) for r in sweep.runs] == [
        ("001-seed=4", 4, None), ("002-seed=5", 5, None)]


# --- errors: one line, naming the file (or the option) and the fix ---

@pytest.mark.parametrize(
    ("sweep", "given", "message"),
    [
        ({"axes": [1]}, {}, "s.yaml: axes: got [1]; expected a mapping of key: value"),
        ({"axes": {"train.batch_size": None}}, {},
         "s.yaml: axes: train.batch_size: got None; expected a list of values, "
         "e.g. train.batch_size: [a, b]"),
        ({"variants": ["a"]}, {}, "s.yaml: variants: expected a non-empty mapping"),
        ({"variants": {"bad name": {}}}, {},
         "s.yaml: variants: name 'bad name'; use letters, digits, '-', '_' or '.'"),
        ({"variants": {"a": 3}}, {}, "s.yaml: variants: a: got 3; expected a mapping"),
        ({"variants": {"a": {"name": "x"}}}, {}, "s.yaml: variants: a: 'name' cannot be swept"),
        ({"set": [1], "axes": {"seed": [1]}}, {}, "s.yaml: set: got [1]; expected a mapping"),
        ({"base": 3, "axes": {"seed": [1]}}, {}, "s.yaml: base: got 3; expected a config path"),
        ({"axes": {"seed": [1]}, "repeats": 0}, {},
         "s.yaml: repeats: got 0; expected a whole number >= 1"),
        ({"axes": {"seed": [1]}, "repeats": True}, {}, "s.yaml: repeats: got True; expected"),
        ({"axes": {"seed": [1]}, "repeats": 1.5}, {}, "s.yaml: repeats: got 1.5; expected"),
        ({"axes": {"seed": [1]}, "repeats": "2"}, {}, "s.yaml: repeats: got '2'; expected"),
        ({"axes": {"seed": [1]}, "repeats": 2}, {"repeats": 0},
         "--repeats: repeats: got 0; expected a whole number >= 1"),
        ({"axes": {"seed": [1]}, "select_by": None}, {},
         "s.yaml: select_by: got None; expected one of best_val_accuracy, final_val_loss"),
        ({"axes": {"seed": [1]}, "select_by": "best_epoch"}, {},
         "s.yaml: select_by: got 'best_epoch'; expected one of"),
        ({"axes": {"train.epochs": [1]}, "set": {"seed": "x"}, "repeats": 2}, {},
         "s.yaml: seed: got 'x'; expected an integer >= 0"),
        ({"axes": {"train.epochs": [1]}, "set": {"seed": 2**32 - 1}, "repeats": 2}, {},
         "s.yaml: run 001-epochs=1-r1: seed: got 4294967296; expected an integer"),
        ({"axes": {"seed": [1, 2]}, "repeats": 2}, {},
         "s.yaml: seed is varied by the sweep, but repeats 2 set each run's seed"),
        ({"variants": {"a": {"seed": 5}, "b": {}}}, {"repeats": 3},
         "s.yaml: seed is varied by the sweep, but repeats 3 set each run's seed"),
        ({"axes": {"train.epochs": [1]}}, {"trials": 3}, "--trials: s.yaml is not a search"),
    ],
)
def test_bad_sweeps_are_one_line_config_errors(sweep: dict, given: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        sweep_from_dict({"base": BASE, **sweep}, origin="s.yaml", **given)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


# --- how many runs at once ---

def configs(count: int, **data: object) -> list[Config]:
    sizes = {"train_size": 200, "val_size": 100, "test_size": 100, **data}
    return [config_from_dict({"data": sizes})] * count


def test_jobs_beyond_the_runs_is_capped_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capacity, "available_memory", lambda: 64 * 2**30)
    fit = capacity.plan(8, configs(3))
    assert (fit.at_once, fit.cores) == (3, None)
    assert fit.reason == ("--jobs 8: up to 3 runs at once (3 runs left), each in a "
                          "worker process")
    fit = capacity.plan("2", configs(3))
    assert fit.at_once == 2 and "there are" not in fit.reason


def test_jobs_auto_takes_the_cores_the_runs_and_the_memory_into_account(
        monkeypatch: pytest.MonkeyPatch) -> None:
    need = capacity.run_memory(configs(1)[0])
    monkeypatch.setattr(capacity, "available_cores", lambda: 4)
    monkeypatch.setattr(capacity, "available_memory", lambda: 64 * 2**30)
    assert capacity.plan("auto", configs(6)) == capacity.Capacity(4, 4, (
        "--jobs auto: up to 4 runs at once on 4 cores (one-thread runs side by side, "
        "all-cores runs two at a time)"))
    timed = capacity.plan("auto", configs(6), timed=True)  # step times are results
    assert (timed.at_once, timed.all_cores_at_once) == (4, 1)
    assert timed.reason.endswith("(one-thread runs side by side, an all-cores run alone)")
    assert capacity.plan("auto", configs(2)).at_once == 2  # no more than the runs
    monkeypatch.setattr(capacity, "available_memory", lambda: 3 * need + need // 2)
    fit = capacity.plan("auto", configs(6))
    assert (fit.at_once, fit.cores) == (3, 4)
    assert fit.reason.startswith("--jobs auto: up to 3 runs at once on 4 cores")
    assert "; not 4: they would need about" in fit.reason
    monkeypatch.setattr(capacity, "available_memory", lambda: None)  # not Linux: unknown
    assert capacity.plan("auto", configs(6)).at_once == 4
    assert capacity.plan("auto", []).reason == "--jobs auto: nothing left to run"


def test_jobs_that_memory_cannot_hold_are_refused_with_what_would_fit() -> None:
    """A run that needs terabytes: no machine holds two of them (the real memory)."""
    huge = configs(1, train_size=50_000, image_size=[4096, 4096])
    assert capacity.run_memory(huge[0]) > 2**40
    with pytest.raises(ConfigError) as error:
        capacity.plan(2, [*configs(1), *huge])
    message = str(error.value)
    assert message.startswith("--jobs 2: 2 runs at once need about ")
    assert message.endswith("is available; use --jobs 1 or --jobs auto")
    assert "\n" not in message
    assert capacity.plan(1, huge * 2).at_once == 1  # one run is always tried
    fit = capacity.plan("auto", huge * 2)
    assert fit.at_once == 1
    assert "they would need about" in fit.reason or capacity.available_cores() == 1


def test_run_memory_grows_with_the_images_and_null_sizes_mean_whole_splits() -> None:
    base = capacity.WORKER_BASE_BYTES
    small, large = configs(1)[0], configs(1, image_size=[64, 64])[0]
    assert capacity.run_memory(large) - base == 4 * (capacity.run_memory(small) - base)
    whole = configs(1, train_size=None, test_size=None)[0]
    assert capacity.run_memory(whole) == capacity.run_memory(
        configs(1, train_size=50_000, test_size=10_000)[0])


# --- backend options ---

def test_local_options_refuse_ray_options() -> None:
    assert local_options("auto") == LocalOptions("auto")
    assert local_options(3, []) == LocalOptions(3)
    with pytest.raises(ConfigError) as error:
        local_options(2, ["--address", "--cpus-per-run"])
    assert str(error.value) == ("--address, --cpus-per-run: only used with --backend ray "
                                "(backend local ignores them); add --backend ray, or drop "
                                "them to train on this machine")
