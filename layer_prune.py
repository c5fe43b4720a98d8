"""`python3 layer_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/layer_prune.py (also `python3 -m prune.layer_prune`)."""
from prune.layer_prune import main

if __name__ == '__main__':
    main()
