"""How fast: inference latency per backend, evaluation time, a training step, the integer
runtime, 2:4 GEMMs on a GPU; cuda_session.sh runs the GPU-side ones in one lent-GPU call."""
