"""`python3 normal_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/normal_prune.py (also `python3 -m prune.normal_prune`)."""
from prune.normal_prune import main

if __name__ == '__main__':
    main()
