"""Every numeric option of the command line is checked by argparse: a malformed value ends
the program with exit status 2 and one line ``gradinv: error: --flag ...`` naming the
option, before any work is done."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from gradinv.cli import build_parser, main
from gradinv.cli.common import Parser, positive_int

ATTACK = ["attack", "--attack", "idlg", "--model", "lenet", "--dataset", "digits"]
TRAIN = ["priors", "train", "--dataset", "digits"]
SAMPLE = ["priors", "sample", "digits-8"]

#: (command, flag, bad values): every numeric flag of every subcommand
NUMERIC_FLAGS = [
    (ATTACK, "--iters", ["-3", "0", "1.5", "ten"]),
    (ATTACK, "--restarts", ["-1", "0", "x"]),
    (ATTACK, "--batch", ["-2", "0", "2.0"]),
    (ATTACK, "--size", ["-32", "0", "4", "big"]),
    (ATTACK, "--seed", ["-1", "4294967296", "0.5"]),
    (ATTACK, "--num-classes", ["-10", "0", "ten"]),
    (ATTACK, "--channels", ["0", "2", "grey"]),
    (ATTACK, "--labels", ["-1", "a"]),
    (["datasets", "--overlap"], "--size", ["-1", "0", "x"]),
    (TRAIN, "--size", ["-8", "0", "x"]),
    (TRAIN, "--channels", ["2", "x"]),
    (TRAIN, "--steps", ["-5", "0", "1e3"]),
    (TRAIN, "--batch-size", ["-1", "0", "x"]),
    (TRAIN, "--lr", ["-0.1", "0", "nan", "inf", "fast"]),
    (TRAIN, "--checkpoint-every", ["-1", "0", "x"]),
    (TRAIN, "--seed", ["-1", "x"]),
    (SAMPLE, "--n", ["-4", "0", "x"]),
    (SAMPLE, "--steps", ["-1", "0", "x"]),
    (SAMPLE, "--eta", ["-0.5", "1.5", "nan", "x"]),
    (SAMPLE, "--seed", ["-1", "x"]),
]
CASES = [
    pytest.param(command, flag, value, id=f"{command[-1] if command[0] != 'attack' else 'attack'}"
                 f"{flag}={value}")
    for command, flag, values in NUMERIC_FLAGS
    for value in values
]  # fmt: skip


@pytest.mark.parametrize(("command", "flag", "value"), CASES)
def test_malformed_number_exits_2_with_one_line_naming_the_option(
    capsys, tmp_path, monkeypatch, command, flag, value
):
    monkeypatch.chdir(tmp_path)  # nothing may be written, but if it were: not in the repo
    code = main([*command, f"{flag}={value}"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gradinv: error: ") and flag in lines[0], lines[0]
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_negative_number_given_as_a_separate_word_is_read_as_the_value(capsys):
    code = main([*ATTACK, "--iters", "-3"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "gradinv: error: --iters must be positive, got -3"


def test_every_numeric_option_of_every_subcommand_has_a_checking_type():
    """A new ``type=int``/``type=float`` flag must use a checking type (or fixed choices)."""

    def actions(parser: argparse.ArgumentParser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from actions(sub)
            else:
                yield parser.prog, action

    unchecked = [
        f"{prog} {action.option_strings[0]}"
        for prog, action in actions(build_parser())
        if action.type in (int, float) and not action.choices
    ]
    assert unchecked == []
    assert isinstance(build_parser(), Parser)


def test_argument_types_accept_good_values():
    assert positive_int("3") == 3
    args = build_parser().parse_args([*SAMPLE, "--eta", "0.5", "--n", "2", "--seed", "7"])
    assert (args.eta, args.n, args.seed) == (0.5, 2, 7)


def test_shape_errors_keep_argparse_usage(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["attack", "--model", "lenet"])
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("usage: gradinv attack")


def test_console_exit_status_is_2_for_a_malformed_number():
    proc = subprocess.run(
        [sys.executable, "-m", "gradinv", *ATTACK, "--iters", "-3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["gradinv: error: --iters must be positive, got -3"]
