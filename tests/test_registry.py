"""Registry behaviour: lookup, validation, registration and entry-point plugins."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest

import goal_plugin as gp
from goal_plugin import registry
from goal_plugin.strategies import Strategy
from goal_plugin.strategies.direction import GradientOrthogonalisation

BUILT_IN = {"none", "none_uniloss", "al", "go", "goal", "ogm", "ogm_ge", "ogm_go", "arl", "arl_go"}


@pytest.fixture
def scratch_registry():
    """Restore the registry after a test that registers names."""
    registry.STRATEGIES.names()  # load the built-ins first, or restoring would drop them
    saved = dict(registry.STRATEGIES._factories)
    yield
    registry.STRATEGIES._factories.clear()
    registry.STRATEGIES._factories.update(saved)


def test_built_ins_are_listed_sorted():
    names = gp.list_strategies()
    assert BUILT_IN <= set(names)
    assert names == sorted(names)


def test_unknown_name_lists_available_and_closest():
    with pytest.raises(ValueError) as info:
        gp.create_strategy("gaol")
    message = str(info.value)
    assert "'gaol'" in message and "did you mean 'goal'" in message
    for name in BUILT_IN:
        assert name in message


@pytest.mark.parametrize("name, meant", [("OGM_GE", "ogm_ge"), ("Goal", "goal"), ("ARL-GO", "arl_go")])
def test_names_in_another_case_get_the_registered_spelling_suggested(name, meant):
    with pytest.raises(ValueError, match=f"unknown strategy '{name}'; did you mean '{meant}'"):
        gp.create_strategy(name)


@pytest.mark.parametrize("name", [["goal"], {"goal": 1}, None, 3])
def test_a_name_that_is_not_a_string_is_a_value_error(name):
    with pytest.raises(ValueError, match=r"unknown strategy .*\. Available: .*goal"):
        gp.create_strategy(name)


def test_misspelt_hyperparameter_is_named_with_suggestion():
    with pytest.raises(ValueError, match=r"'temprature'.*did you mean 'temperature'"):
        gp.create_strategy("goal", temprature=1.0)


def test_hyperparameter_for_a_strategy_without_any():
    with pytest.raises(ValueError, match="takes no hyperparameters"):
        gp.create_strategy("none", temperature=1.0)


@pytest.mark.parametrize(
    "name, key, value",
    [
        ("goal", "temperature", 0),
        ("goal", "temperature", -1.0),
        ("goal", "temperature", math.nan),
        ("goal", "temperature", math.inf),
        ("goal", "temperature", "1.0"),
        ("goal", "temperature", True),
        ("al", "temperature", 0.0),
        ("goal", "space", "pixel"),
        ("go", "eps", 0.0),
        ("ogm", "alpha", -0.1),
        ("ogm_ge", "noise_scope", "bias"),
        ("arl", "arl_temperature", 0.0),
        ("arl", "entropy_floor", 1.0),
    ],
)
def test_invalid_hyperparameter_values_name_the_parameter(name, key, value):
    with pytest.raises(ValueError, match=key):
        gp.create_strategy(name, **{key: value})


def test_hparams_record_defaults_and_overrides():
    strategy = gp.create_strategy("goal", temperature=0.4)
    assert strategy.name == "goal"
    assert strategy.hparams == {"temperature": 0.4, "uncertainty": "entropy", "space": "sample", "eps": 1e-8}
    assert gp.strategy_hyperparameters("ogm") == {"alpha": 0.1}


def test_register_new_strategy_and_refuse_duplicates(scratch_registry):
    @gp.register_strategy("go_batch")
    def go_batch(*, eps: float = 1e-8) -> Strategy:
        return Strategy(direction=GradientOrthogonalisation("batch", eps))

    assert "go_batch" in gp.list_strategies()
    assert gp.create_strategy("go_batch").direction.space == "batch"
    with pytest.raises(ValueError, match="already registered"):
        gp.register_strategy("go_batch")(go_batch)
    with pytest.raises(ValueError, match="already registered"):
        gp.register_strategy("goal")(go_batch)
    gp.register_strategy("go_batch", override=True)(lambda: Strategy())
    assert gp.create_strategy("go_batch").direction is None


@pytest.mark.parametrize("bad", ["", "Goal", "go-al", "1go", None])
def test_register_refuses_bad_names(bad):
    with pytest.raises(ValueError, match="strategy name"):
        gp.register_strategy(bad)


def test_factory_must_return_a_strategy(scratch_registry):
    gp.register_strategy("broken")(lambda: object())
    with pytest.raises(TypeError, match="not a Strategy"):
        gp.create_strategy("broken")


def _install_plugin(tmp_path, monkeypatch, module_source, entry_points_text):
    (tmp_path / "third_party_strategies.py").write_text(textwrap.dedent(module_source))
    dist = tmp_path / "third_party_strategies-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: third-party-strategies\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(entry_points_text))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.STRATEGIES.reload_entry_points()


@pytest.fixture
def plugin_cleanup():
    saved = dict(registry.STRATEGIES._factories)
    yield
    sys.modules.pop("third_party_strategies", None)
    registry.STRATEGIES._factories.clear()
    registry.STRATEGIES._factories.update(saved)
    # Looked up again lazily, once monkeypatch has taken the plugin off sys.path.
    registry.STRATEGIES._broken.clear()
    registry.STRATEGIES._entry_points_loaded = False


def test_entry_point_plugins_are_registered(tmp_path, monkeypatch, plugin_cleanup):
    _install_plugin(
        tmp_path,
        monkeypatch,
        """
        from goal_plugin.strategies import Strategy, GradientOrthogonalisation

        def double_go(*, eps: float = 1e-6):
            return Strategy(direction=GradientOrthogonalisation("sample", eps))
        """,
        """
        [goal_plugin.strategies]
        double_go = third_party_strategies:double_go
        """,
    )
    assert "double_go" in gp.list_strategies()
    assert gp.create_strategy("double_go", eps=1e-3).direction.eps == 1e-3


def test_broken_plugin_warns_and_reports_on_use(tmp_path, monkeypatch, plugin_cleanup):
    with pytest.warns(UserWarning, match="failed to load"):
        _install_plugin(
            tmp_path,
            monkeypatch,
            "raise ImportError('missing dependency xyz')\n",
            "[goal_plugin.strategies]\nbad_plugin = third_party_strategies:factory\n",
        )
    assert "goal" in gp.list_strategies()
    with pytest.raises(ValueError, match="missing dependency xyz"):
        gp.create_strategy("bad_plugin")


def test_plugin_cannot_shadow_a_built_in(tmp_path, monkeypatch, plugin_cleanup):
    with pytest.warns(UserWarning, match="taken name 'goal'"):
        _install_plugin(
            tmp_path,
            monkeypatch,
            "from goal_plugin.strategies import Strategy\nfactory = Strategy\n",
            "[goal_plugin.strategies]\ngoal = third_party_strategies:factory\n",
        )
    assert gp.create_strategy("goal").direction is not None


def test_built_ins_that_fail_to_import_fail_every_lookup(tmp_path, monkeypatch, request):
    """A registry whose built-ins module cannot be imported (a missing dependency) raises
    that error on every lookup, rather than going on without the built-ins after the first."""
    (tmp_path / "scratch_registry_home.py").write_text(
        "from goal_plugin._registry import Registry\n"
        "THINGS = Registry('thing', built_ins='scratch_built_ins')\n"
    )
    (tmp_path / "scratch_built_ins.py").write_text(
        "from scratch_registry_home import THINGS\n"
        "THINGS.register('kept')(dict)\n"
        "import a_dependency_that_is_not_installed\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: [sys.modules.pop(m, None) for m in ("scratch_registry_home", "scratch_built_ins")])
    from scratch_registry_home import THINGS

    for lookup in (THINGS.names, lambda: THINGS.get("kept"), THINGS.names):
        with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
            lookup()


def test_no_strategy_hyperparameter_is_named_like_a_config_key():
    """Config keys and hyperparameters are flat keys of one config: a hyperparameter named
    like a config key (PMR's prototype momentum as ``momentum``) could never be set."""
    from goal_plugin.engine.config import DEFAULTS

    clashes = {name: sorted(set(gp.strategy_hyperparameters(name)) & set(DEFAULTS)) for name in gp.list_strategies()}
    assert not {name: keys for name, keys in clashes.items() if keys}


def test_a_plugin_strategy_with_a_config_key_as_hyperparameter_is_refused(scratch_registry):
    from goal_plugin.engine import ConfigError, resolve_config

    @gp.register_strategy("shadowing")
    def shadowing(*, lr: float = 0.5):
        return gp.create_strategy("none")

    with pytest.raises(ConfigError, match=r"strategy 'shadowing' has hyperparameter\(s\) \['lr'\] named like config keys"):
        resolve_config({"strategy": "shadowing"})
