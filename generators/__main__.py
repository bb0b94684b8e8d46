"""`python -m generators ARGS`: the perfstack command line from this working tree (what the tests run)."""

from .cli import main

main(prog_name="perfstack")
