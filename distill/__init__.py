"""Knowledge distillation: a teacher network's outputs and features as extra training losses."""
