"""`python3 slim_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/slim_prune.py (also `python3 -m prune.slim_prune`)."""
from prune.slim_prune import main

if __name__ == '__main__':
    main()
