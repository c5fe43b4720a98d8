"""Train a YOLO detector from a darknet cfg: python3 train.py --help. The run lives in the train
package (options, checkpoint, trainer); this file is the command."""
from train import main

if __name__ == '__main__':
    main()
