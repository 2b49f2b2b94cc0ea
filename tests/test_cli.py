"""``fastgeo --help``: a real description, every subcommand listed with its help."""

import subprocess
import sys

from fastgeo import cli


def test_help_opens_with_whole_sentences_and_lists_every_command():
    text = cli.build_parser().format_help()
    description = text.split("\n\n")[1]
    assert description.startswith("fastgeo: fast Numba kernels for small dense MLPs")
    assert description.rstrip().endswith(".")
    for sentence in " ".join(description.split()).split(". "):
        assert sentence[0].isupper() or sentence.startswith("fastgeo"), sentence
    for command in ("demo", "reproduce", "sweep", "bench"):
        assert f"\n    {command}" in text, command
    assert "fastgeo COMMAND --help" in text


def test_help_from_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "fastgeo", "--help"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout == cli.build_parser().format_help()
