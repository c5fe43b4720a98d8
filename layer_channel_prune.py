"""`python3 layer_channel_prune.py` from the repository root, as the reference toolkit writes it;
the script is prune/layer_channel_prune.py (also `python3 -m prune.layer_channel_prune`)."""
from prune.layer_channel_prune import main

if __name__ == '__main__':
    main()
