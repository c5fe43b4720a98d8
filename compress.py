"""Compress a detector end to end with one command: python3 compress.py --help. The stages and
options live in the compress package; this file is the command."""
from compress import main

if __name__ == '__main__':
    main()
