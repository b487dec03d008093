"""The one ``key=value`` override parser (gradinv.options): types, optionals, bools, tuples,
nested and inline configs, unknown keys and bad values as one-line errors."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from gradinv import options
from gradinv.errors import GradInvError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.5
    mode: str = "fast"
    flag: bool = True  # shadowed by Outer.flag when inline

    def __post_init__(self) -> None:
        if not 0 <= self.rate <= 1:
            raise GradInvError(f"rate must be in [0, 1], got {self.rate}")


@dataclass(frozen=True)
class Outer:
    steps: int = 10
    lr: float = 1e-3
    flag: bool = False
    name: str = "x"
    limit: float | None = None
    layer: str | None = "conv"
    sizes: tuple[int, ...] = (8, 16)
    pair: tuple[int, float] = (1, 2.0)
    inner: Inner = field(default_factory=Inner, metadata=options.INLINE)
    seed: int = 0


@pytest.mark.parametrize(
    "text,value",
    [("true", True), ("False", False), (" yes ", True), ("0", False), ("on", True), (True, True)],
)
def test_bools_parse_from_words_and_digits(text, value):
    assert options.parse_value(text, bool, "flag", "thing") is value


@pytest.mark.parametrize("text", ["maybe", "2", 1.0])
def test_bad_bool_names_the_option_and_the_type(text):
    with pytest.raises(GradInvError, match=r"option flag=.* of thing is not a valid bool"):
        options.parse_value(text, bool, "flag", "thing")


@pytest.mark.parametrize(
    "text,hint,value",
    [
        ("8,16", tuple[int, ...], (8, 16)),
        ("8 16 32", tuple[int, ...], (8, 16, 32)),
        ("(16)", tuple[int, ...], (16,)),
        ("[1e-3, 2e-3]", tuple[float, ...], (1e-3, 2e-3)),
        ([4, "8"], tuple[int, ...], (4, 8)),
        (3, tuple[int, ...], (3,)),
        ("1, 2.5", tuple[int, float], (1, 2.5)),
    ],
)
def test_tuples_parse_from_strings_lists_and_scalars(text, hint, value):
    out = options.parse_value(text, hint, "sizes", "thing")
    assert out == value and isinstance(out, tuple)
    assert all(type(a) is type(b) for a, b in zip(out, value, strict=True))


@pytest.mark.parametrize(
    "text,hint", [("8,x", tuple[int, ...]), ("1,2,3", tuple[int, float]), ("1.5", tuple[int, ...])]
)
def test_bad_tuples_name_the_option_and_the_type(text, hint):
    with pytest.raises(GradInvError, match=r"option sizes=.* of thing is not a valid tuple\["):
        options.parse_value(text, hint, "sizes", "thing")


@pytest.mark.parametrize(
    "text,hint,value",
    [
        ("none", float | None, None),
        ("Null", float | None, None),
        ("", float | None, None),
        (None, float | None, None),
        ("1e-2", float | None, 0.01),
        ("None", str | None, None),
        ("layer4", str | None, "layer4"),
        ("3", int | None, 3),
    ],
)
def test_optionals_take_none_words_or_the_inner_type(text, hint, value):
    assert options.parse_value(text, hint, "limit", "thing") == value


def test_numbers_and_strings():
    assert options.parse_value("1e3", int, "steps", "t") == 1000
    assert options.parse_value("60", float, "p", "t") == 60.0
    assert options.parse_value(" Global ", str, "scope", "t") == "Global"  # stripped, case kept
    with pytest.raises(GradInvError, match="not a valid int"):
        options.parse_value("2.5", int, "steps", "t")
    with pytest.raises(GradInvError, match="not a valid float"):
        options.parse_value(True, float, "lr", "t")


def test_build_parses_strings_to_every_field_type_and_keeps_fixed_fields():
    cfg = options.build(
        Outer,
        {"steps": "20", "flag": "true", "limit": "none", "layer": "null", "sizes": "4,8"},
        "thing",
        seed=7,
    )
    assert cfg == Outer(steps=20, flag=True, limit=None, layer=None, sizes=(4, 8), seed=7)
    with pytest.raises(GradInvError, match="thing has no option seed; valid options: steps"):
        options.build(Outer, {"seed": "1"}, "thing", seed=7)


def test_unknown_keys_list_the_valid_options_extra_ones_last():
    with pytest.raises(GradInvError, match=r"thing has no option bogus, nope; valid options: "):
        options.parse_overrides(Outer, {"nope": 1, "bogus": 2}, "thing")
    with pytest.raises(GradInvError, match=r"valid options: steps, .*, seed, rate, mode, retries$"):
        options.parse_overrides(Outer, {"nope": 1}, "thing", extra={"retries": int})
    assert options.parse_overrides(Outer, {"retries": "3"}, "thing", extra={"retries": int}) == {
        "retries": 3
    }


def test_inline_nested_fields_are_top_level_options_and_nest_back():
    assert list(options.option_hints(Outer))[-2:] == ["rate", "mode"]  # flag: Outer's own
    cfg = options.build(Outer, {"rate": "0.25", "mode": "slow", "flag": "yes"}, "thing")
    assert cfg.inner == Inner(rate=0.25, mode="slow") and cfg.flag is True
    assert cfg.inner.flag is True  # the outer field shadows the inner one
    given = options.build(Outer, {"inner": {"rate": "0.1"}, "mode": "slow"}, "thing")
    assert given.inner == Inner(rate=0.1, mode="slow")
    assert options.build(Outer, {"inner": Inner(mode="m")}, "thing").inner == Inner(mode="m")
    with pytest.raises(GradInvError, match="rate must be in"):
        options.build(Outer, {"rate": "2"}, "thing")
    with pytest.raises(GradInvError, match="has no option bad"):
        options.build(Outer, {"inner": {"bad": 1}}, "thing")
    with pytest.raises(GradInvError, match="option inner=3 of thing is not a valid Inner"):
        options.build(Outer, {"inner": 3}, "thing")


def test_defaults_list_every_option_with_its_default():
    d = options.defaults(Outer, exclude=("seed",))
    assert d["steps"] == 10 and d["sizes"] == (8, 16) and d["inner"] == Inner()
    assert d["rate"] == 0.5 and d["mode"] == "fast" and "seed" not in d

    @dataclass(frozen=True)
    class Needs:
        x: int

    assert options.defaults(Needs) == {"x": dataclasses.MISSING}
