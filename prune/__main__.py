"""python3 -m prune --method NAME [flags] (prune/cli.py)."""
from prune.cli import main

main()
