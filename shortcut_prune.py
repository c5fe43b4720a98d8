"""`python3 shortcut_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/shortcut_prune.py (also `python3 -m prune.shortcut_prune`)."""
from prune.shortcut_prune import main

if __name__ == '__main__':
    main()
