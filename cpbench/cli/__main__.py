"""`python -m cpbench.cli`: the same as the `cpbench` command."""

from cpbench.cli.app import main

main()
