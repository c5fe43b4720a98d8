"""Export a checkpoint for deployment: python3 export.py --help. The work lives in the export
package (formats, and quantize/graphs.py for ONNX and OpenVINO); this file is the command."""
from export import main

if __name__ == '__main__':
    main()
