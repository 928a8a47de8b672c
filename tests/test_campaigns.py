"""Campaigns from the command line, and their printable cards: the QR on the printed page must give
back the exact number and text (read with Debian's pdftoppm and zbarimg, as a phone's camera would)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from bot.cli import main

NUMBER = "+18165550100"
TOOLS = ("pdftoppm", "zbarimg")


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(main, list(args), env=env)


@pytest.fixture
def card_env(env):
    return {**env, "PROGRAM_NUMBER": "(816) 555-0100"}


def test_campaigns_are_added_listed_and_ended(card_env):
    added = run(
        card_env, "campaign", "add", "--code", "ia1129", "--name", "Independence Ave, Nov 29", "--zips", "64124,64123"
    )
    assert added.exit_code == 0, added.output
    assert "HI IA1129" in added.output
    listed = run(card_env, "campaign", "list")
    assert "IA1129\tIndependence Ave, Nov 29\t64124,64123" in listed.output and "\tactive" in listed.output
    again = run(card_env, "campaign", "add", "--code", "IA1129", "--name", "Twice")
    assert again.exit_code == 1 and "already exists" in again.output
    assert run(card_env, "campaign", "end", "IA1129").exit_code == 0
    assert "not active" in run(card_env, "campaign", "list").output


def test_a_campaign_code_is_letters_and_digits(card_env):
    result = run(card_env, "campaign", "add", "--code", "IA 1129", "--name", "x")
    assert result.exit_code == 1 and "letters and digits" in result.output
    result = run(card_env, "campaign", "add", "--code", "IA1129", "--name", "x", "--zips", "641")
    assert result.exit_code == 1 and "Not a ZIP code: 641" in result.output


def test_cards_need_the_program_number(env, tmp_path):
    run(env, "campaign", "add", "--code", "IA1129", "--name", "x")
    result = run(env, "card", "--campaign", "IA1129", "--out", str(tmp_path / "cards.pdf"))
    assert result.exit_code == 1 and "PROGRAM_NUMBER" in result.output


def test_cards_of_an_unknown_campaign_say_so(card_env, tmp_path):
    result = run(card_env, "card", "--campaign", "NOPE1", "--out", str(tmp_path / "cards.pdf"))
    assert result.exit_code == 1 and "no campaign NOPE1" in result.output


@pytest.mark.skipif(
    not all(shutil.which(t) for t in TOOLS),
    reason="needs Debian's poppler-utils (pdftoppm) and zbar-tools (zbarimg): apt-get install poppler-utils zbar-tools",
)
def test_the_printed_cards_qr_opens_a_text_with_the_number_and_the_code(card_env, tmp_path):
    run(card_env, "campaign", "add", "--code", "IA1129", "--name", "Independence Ave, Nov 29")
    pdf = tmp_path / "cards.pdf"
    result = run(card_env, "card", "--campaign", "ia1129", "--out", str(pdf))
    assert result.exit_code == 0, result.output
    pages = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+1$", pages, re.M) and "612 x 792 pts (letter)" in pages
    subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", str(pdf), str(tmp_path / "page")], check=True)
    read = subprocess.run(
        ["zbarimg", "--quiet", "--raw", str(tmp_path / "page.png")], capture_output=True, text=True, check=True
    )
    assert read.stdout.splitlines() == [f"SMSTO:{NUMBER}:HI IA1129"] * 10  # ten cards on the sheet
    words = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Text HI IA1129" in words and "Envíe HI IA1129" in words and "(816) 555-0100" in words
