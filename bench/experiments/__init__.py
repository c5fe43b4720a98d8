"""What a choice costs or buys: prune methods, quantization schemes, PTQ of real models,
distillation strategies, the multi-task network."""
