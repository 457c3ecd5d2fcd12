"""The command line: papermill's option names, --prepare-only, --output-root, allowed values in `params`, a fast
`models`, and a quiet exit when the reader of its output goes away."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.__main__ import _allowed_values, build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_top_level_help_lists_every_command_and_the_output_root():
    text = build_parser().format_help()
    for command in ("run", "rerun", "sweep", "params", "demo", "probe-videos", "models", "train-twin"):
        assert command in text
    assert "WORKBENCH_OUTPUTS" in text and "--output-root" in text


def test_run_takes_papermills_option_names():
    parser = build_parser()
    args = parser.parse_args(["run", "04_caption_quality", "--parameters_file", "x.yaml", "--parameters", "a", "1",
                              "--parameters_raw", "b", "no", "--parameters_yaml", "{c: 2}", "--kernel", "k",
                              "--cwd", "/tmp", "--prepare-only", "--execution-timeout", "5",
                              "--output-root", "/tmp/out"])
    assert (args.file, args.kernel, args.cwd, args.cell_timeout, args.output_root) == ("x.yaml", "k", "/tmp", 5.0,
                                                                                       "/tmp/out")
    assert args.values == [("-p", "a", "1"), ("-r", "b", "no")] and args.yaml == ["{c: 2}"] and args.prepare_only
    short = parser.parse_args(["run", "nb", "-f", "x.yaml", "-p", "a", "1", "-r", "b", "no", "-y", "{c: 2}", "-k", "k"])
    assert (short.file, short.values, short.yaml, short.kernel) == ("x.yaml", args.values, ["{c: 2}"], "k")


def test_prepare_only_validates_merges_in_papermills_order_and_writes_nothing(tmp_path, capsys):
    code = main(["run", "04_caption_quality", "-f", "params/04_caption_quality.smoke.yaml",
                 "-y", "{max_seconds: 2, max_new_tokens: 5}", "-p", "max_new_tokens", "7", "--prepare-only",
                 "--output-root", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0 and "nothing run" in out
    assert "max_seconds: 2" in out and "max_new_tokens: 7" in out  # -p after -y wins
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("manifest.json"))


def test_yaml_option_must_be_a_mapping(capsys):
    assert main(["run", "04_caption_quality", "-y", "[1, 2]", "--prepare-only"]) == 2
    assert "must be a YAML mapping" in capsys.readouterr().err


def test_unknown_parameter_in_prepare_only_is_an_error(capsys):
    assert main(["run", "04_caption_quality", "-p", "no_such_parameter", "1", "--prepare-only"]) == 2
    assert "no_such_parameter" in capsys.readouterr().err


def test_params_lists_allowed_values(capsys):
    assert main(["params", "04_caption_quality"]) == 0
    out = capsys.readouterr().out
    assert "allowed values:" in out and "Quantization: none, 8bit, 4bit-nf4" in out
    assert str(REPO) not in out  # the notebook's path is shown relative
    assert _allowed_values("list[Attention]") == ["eager", "sdpa", "flash_attention_2"]
    assert _allowed_values("dict[str, Any]") == []


def test_models_builds_no_architecture_unless_sizes_are_asked(monkeypatch, capsys):
    import workbench.weights

    def refuse(*_args, **_kwargs):
        raise AssertionError("models without --sizes must not build architectures")

    monkeypatch.setattr(workbench.weights, "spec_weight_counts", refuse)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "qwen2-vl-7b" in out and "Qwen/Qwen2-VL-7B-Instruct" in out and "8.29B" in out


def test_closed_pipe_ends_quietly():
    """`python -m workbench params X | head -1`: no BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "params", "04_caption_quality"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # the reader is gone before the first line is written: every write fails with EPIPE
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize("argv", [["models", "--help"], ["run", "--help"], ["params", "--help"]])
def test_subcommand_help_answers(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0 and capsys.readouterr().out
