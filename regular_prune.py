"""`python3 regular_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/regular_prune.py (also `python3 -m prune.regular_prune`)."""
from prune.regular_prune import main

if __name__ == '__main__':
    main()
