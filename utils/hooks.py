"""Hook points of the one training loop; sparsity, quantization and distillation plug in here.

A hook never forks the loop: train.py calls every hook at fixed points and each hook does its
part. Subclass TrainHook and override what you need:

- on_model(model) -> model: around model construction, before the optimizer exists (module swap
  for quantization-aware training).
- after_backward(model, epoch): after backward and AMP unscaling, once per optimizer step, before
  the step (e.g. the L1 push on BN gammas of sparse training).
- on_epoch_start(model, epoch): before an epoch's first batch (--sr-target chooses its cut).
- after_step(model, epoch): right after each optimizer step (--sr-target holds the gammas of the
  channels it has cut at 0).
- extra_loss(model, imgs, preds, targets) -> {name: scalar tensor}: terms added to the loss and
  logged under their names (distillation, with the teacher run under no_grad).
- on_epoch_end(model, epoch) -> {column: value}: extra results.csv columns.
- best_eligible(epoch) -> bool: False while the model is not in its final form yet (--sr-target
  before its cut channels are gone); best.pt passes over such epochs.
- state() / load_state(dict): anything to keep in checkpoints for an exact --resume.

- parameters(device) -> list: extra trainable tensors (distillation adapters), moved to the
  training device; they get their own optimizer group and are never part of the model.

``save_dir`` is the run folder on the process that writes (None elsewhere), for a hook's plots;
``hyp`` the resolved hyperparameters, set once the model is built.
"""


class TrainHook:
    name = 'hook'
    save_dir = None
    hyp = None

    def on_model(self, model):
        return model

    def parameters(self, device):
        return []

    def on_epoch_start(self, model, epoch):
        pass

    def after_backward(self, model, epoch):
        pass

    def after_step(self, model, epoch):
        pass

    def extra_loss(self, model, imgs, preds, targets):
        return {}

    def on_epoch_end(self, model, epoch):
        return {}

    def best_eligible(self, epoch):
        return True

    def state(self):
        return {}

    def load_state(self, state):
        pass


HOOK_BUILDERS = []  # functions opt -> TrainHook or None, registered by the features that add flags


def build_hooks(opt) -> list:
    hooks = [build(opt) for build in HOOK_BUILDERS]
    return [h for h in hooks if h is not None]
