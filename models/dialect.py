"""The cfg dialect: every block and key that AlexeyAB's darknet and lightNet (with lightNet-TRT's
deployment keys) define, sorted by what this toolkit does with them.

- COMPUTE[block]: keys that change what the network computes, with their type and darknet's
  default. Honoured.
- DEPLOY[block]: keys that say how a layer is deployed (2:4 sparsity, per-layer pruning and
  precision, class names and colours). Kept, typed, and used where the toolkit has the feature.
- TRAINING[block] and GENERIC_TRAINING: keys darknet reads only while training (augmentation,
  optimizer, loss, NMS, CUDA streams, freezing). Kept through a round trip and ignored.
- UNSUPPORTED[block]: keys that change the computation in ways not implemented here: refused
  with the file and line rather than silently building a different network.
- BUILT: the blocks the model builder turns into layers; the other known blocks parse (so their
  keys are checked) and are refused by the builder with one line.

Types: int, float, ints (comma list), floats, act (activation name), str, strs (comma list of
names), choice:<a|b|...>.
"""

# darknet's activations (get_activation) plus the toolkit's own extensions (hswish, h_swish,
# hard_sigmoid), which AlexeyAB's darknet does not know: it prints a line and runs ReLU instead
DARKNET_ACTIVATIONS = (
    'logistic', 'loggy', 'relu', 'elu', 'selu', 'gelu', 'relie', 'plse', 'hardtan', 'lhtan',
    'linear', 'ramp', 'leaky', 'tanh', 'stair', 'relu6', 'swish', 'mish', 'hard_mish')
EXTENSION_ACTIVATIONS = ('hswish', 'h_swish', 'hard_sigmoid')
ACTIVATION_NAMES = DARKNET_ACTIVATIONS + EXTENSION_ACTIVATIONS
DARKNET_FALLBACK = 'relu'  # what darknet runs for an activation it does not know

ALIASES = {'network': 'net', 'conv': 'convolutional', 'max': 'maxpool', 'avg': 'avgpool',
           'conn': 'connected', 'soft': 'softmax', 'logi': 'logistic', 'lrn': 'normalization',
           'local_avg': 'local_avgpool', 'silence': 'empty'}

PRECISIONS = ('fp32', 'fp16', 'int8', 'int4')

COMPUTE = {
    'net': {'width': ('int', 416), 'height': ('int', 416), 'channels': ('int', 3)},
    'convolutional': {
        'filters': ('int', 1), 'size': ('int', 1), 'stride': ('int', 1), 'pad': ('int', 0),
        'padding': ('int', 0), 'groups': ('int', 1), 'dilation': ('int', 1),
        'batch_normalize': ('int', 0), 'activation': ('act', 'logistic')},
    'shortcut': {'from': ('ints', None), 'activation': ('act', 'linear'),
                 'weights_type': ('str', 'none'), 'weights_normalization': ('str', 'none')},
    'route': {'layers': ('ints', None), 'groups': ('int', 1), 'group_id': ('int', 0)},
    'upsample': {'stride': ('int', 2), 'scale': ('float', 1.0)},
    'maxpool': {'size': ('int', 1), 'stride': ('int', 1), 'padding': ('int', None)},
    'avgpool': {},
    'dropout': {'probability': ('float', 0.5)},
    'scale_channels': {'from': ('int', None), 'activation': ('act', 'linear'),
                       'scale_wh': ('int', 0)},
    'sam': {'from': ('int', None), 'activation': ('act', 'linear')},
    'activation': {'activation': ('act', 'linear')},
    'empty': {},
    'yolo': {'mask': ('ints', None), 'anchors': ('floats', None), 'classes': ('int', 20),
             'num': ('int', 1), 'scale_x_y': ('float', 1.0), 'new_coords': ('int', 0)},
    'softmax': {'groups': ('int', 1), 'stride': ('int', 1), 'temperature': ('float', 1.0),
                'classes': ('int', None), 'num': ('int', None)},
    'logistic': {'groups': ('int', 1), 'stride': ('int', 1), 'classes': ('int', None),
                 'num': ('int', None)},
    # known to the parsers, not built here: the keys that shape them
    'local': {'filters': ('int', 1), 'size': ('int', 1), 'stride': ('int', 1),
              'pad': ('int', 0), 'activation': ('act', 'logistic')},
    'connected': {'output': ('int', 1), 'activation': ('act', 'logistic'),
                  'batch_normalize': ('int', 0)},
    'crnn': {'size': ('int', 3), 'stride': ('int', 1), 'dilation': ('int', 1), 'pad': ('int', 0),
             'padding': ('int', 0), 'output': ('int', 1), 'hidden': ('int', 1),
             'groups': ('int', 1), 'activation': ('act', 'logistic'),
             'batch_normalize': ('int', 0), 'xnor': ('int', 0), 'shortcut': ('int', 0)},
    'rnn': {'output': ('int', 1), 'hidden': ('int', 1), 'activation': ('act', 'logistic'),
            'batch_normalize': ('int', 0), 'logistic': ('int', 0), 'shortcut': ('int', 0)},
    'gru': {'output': ('int', 1), 'batch_normalize': ('int', 0)},
    'lstm': {'output': ('int', 1), 'batch_normalize': ('int', 0)},
    'conv_lstm': {'size': ('int', 3), 'stride': ('int', 1), 'dilation': ('int', 1),
                  'pad': ('int', 0), 'padding': ('int', 0), 'output': ('int', 1),
                  'groups': ('int', 1), 'activation': ('act', 'linear'),
                  'batch_normalize': ('int', 0), 'xnor': ('int', 0), 'peephole': ('int', 0),
                  'bottleneck': ('int', 0), 'shortcut': ('int', 0),
                  'lstm_activation': ('act', 'tanh'), 'state_constrain': ('int', 0),
                  'time_normalizer': ('float', 1.0)},
    'history': {'history_size': ('int', 4)},
    'region': {'coords': ('int', 4), 'classes': ('int', 20), 'num': ('int', 1),
               'softmax': ('int', 0), 'anchors': ('floats', None), 'log': ('int', 0),
               'sqrt': ('int', 0), 'absolute': ('int', 0)},
    'detection': {'coords': ('int', 1), 'classes': ('int', 1), 'num': ('int', 1),
                  'side': ('int', 7), 'softmax': ('int', 0), 'sqrt': ('int', 0),
                  'reorg': ('int', 0)},
    'Gaussian_yolo': {'mask': ('ints', None), 'anchors': ('floats', None),
                      'classes': ('int', 20), 'num': ('int', 1), 'scale_x_y': ('float', 1.0),
                      'yolo_point': ('str', 'center')},
    'contrastive': {'classes': ('int', 1000), 'yolo_layer': ('int', 0),
                    'temperature': ('float', 1.0)},
    'cost': {'type': ('str', 'sse'), 'scale': ('float', 1.0), 'ratio': ('float', 0.0)},
    'crop': {'crop_height': ('int', 1), 'crop_width': ('int', 1), 'shift': ('float', 0.0),
             'noadjust': ('int', 0)},
    'reorg3d': {'stride': ('int', 1), 'reverse': ('int', 0)},
    'reorg': {'stride': ('int', 1), 'reverse': ('int', 0)},
    'local_avgpool': {'size': ('int', 1), 'stride': ('int', 1), 'padding': ('int', None)},
    'normalization': {'alpha': ('float', 0.0001), 'beta': ('float', 0.75),
                      'kappa': ('float', 1.0), 'size': ('int', 5)},
    'batchnorm': {},
    'implicit': {'mean': ('float', 0.0), 'std': ('float', 0.2), 'filters': ('int', 128),
                 'atoms': ('int', 1)},
}

BUILT = ('net', 'convolutional', 'shortcut', 'route', 'upsample', 'maxpool', 'avgpool',
         'dropout', 'scale_channels', 'sam', 'activation', 'empty', 'yolo', 'softmax',
         'logistic')

DEPLOY = {
    'convolutional': {'sparse': ('int', 0), 'pruning': ('float', 0.0),
                      'precision': ('choice:' + '|'.join(PRECISIONS), 'fp32'),
                      'quant': ('int', 0), 'max_float': ('float', 0.0)},
    'yolo': {'names': ('strs', None), 'colormap': ('ints', None)},
    'softmax': {'names': ('strs', None), 'colormap': ('ints', None)},
    'logistic': {'names': ('strs', None), 'colormap': ('ints', None)},
    'shortcut': {'max_float': ('float', 0.0)},
    'route': {'max_float': ('float', 0.0)},
    'upsample': {'max_float': ('float', 0.0)},
    'maxpool': {'max_float': ('float', 0.0)},
}

# every layer: freezing, per-layer learning rate, loading, CUDA streams (darknet's parse loop)
GENERIC_TRAINING = {'clip', 'onlyforward', 'dont_update', 'burnin_update', 'stopbackward',
                    'train_only_bn', 'dontload', 'dontloadscales', 'learning_rate', 'stream',
                    'wait_stream'}

_LOSS = {'jitter', 'ignore_thresh', 'truth_thresh', 'random', 'iou_normalizer',
         'cls_normalizer', 'obj_normalizer', 'delta_normalizer', 'uc_normalizer', 'iou_loss',
         'iou_thresh', 'iou_thresh_kind', 'nms_kind', 'beta_nms', 'max_delta',
         'label_smooth_eps', 'resize', 'focal_loss', 'max', 'counters_per_class',
         'objectness_smooth', 'map', 'show_details', 'rescore', 'bias_match', 'thresh'}

TRAINING = {
    'net': {
        'batch', 'subdivisions', 'momentum', 'decay', 'angle', 'saturation', 'exposure', 'hue',
        'learning_rate', 'learning_rate_min', 'burn_in', 'max_batches', 'policy', 'steps',
        'scales', 'step', 'scale', 'gamma', 'power', 'mosaic', 'mosaic_bound', 'cutmix',
        'mixup', 'blur', 'gaussian_noise', 'letter_box', 'flip', 'min_crop', 'max_crop',
        'aspect', 'inputs', 'max_chart_loss', 'adam', 'B1', 'B2', 'eps', 'sgdr_cycle',
        'sgdr_mult', 'seq_scales', 'track', 'time_steps', 'augment_speed',
        'init_sequential_subdivisions', 'sequential_subdivisions', 'try_fix_nan', 'loss_scale',
        'dynamic_minibatch', 'optimized_memory', 'workspace_size_limit_MB', 'adversarial_lr',
        'attention', 'contrastive', 'contrastive_jit_flip', 'contrastive_color', 'unsupervised',
        'ema_alpha', 'use_cuda_graph', 'equidistant_point', 'num_boxes', 'batches_per_cycle',
        'batches_cycle_mult', 'resize_step', 'rescale', 'label_smooth_eps',
        'show_receptive_field', 'max_epochs', 'random', 'weights_reject_freq',
        'badlabels_rejection_percentage', 'num_sigmas_reject_badlabels'},
    'yolo': _LOSS | {'track_history_size', 'sim_thresh', 'dets_for_track', 'dets_for_show',
                     'track_ciou_norm', 'embedding_layer', 'absolute'},
    'Gaussian_yolo': _LOSS,
    'region': _LOSS | {'classfix', 'coord_scale', 'object_scale', 'noobject_scale',
                       'mask_scale', 'class_scale', 'tree'},
    'detection': _LOSS | {'coord_scale', 'forced', 'object_scale', 'noobject_scale',
                          'class_scale'},
    'convolutional': {'cbn', 'dot', 'grad_centr', 'assisted_excitation'},
    'softmax': {'max_delta', 'counters_per_class', 'noloss', 'tree', 'spatial'},
    'logistic': {'max_delta', 'counters_per_class', 'noloss', 'scale'},
    'contrastive': {'cls_normalizer', 'max_delta', 'contrastive_neg_max'},
    'dropout': {'dropblock', 'dropblock_size_rel', 'dropblock_size_abs'},
    'crop': {'flip', 'angle', 'saturation', 'exposure'},
}

UNSUPPORTED = {
    'convolutional': {'binary', 'xnor', 'bin_output', 'antialiasing', 'share_index', 'stride_x',
                      'stride_y', 'coordconv', 'sway', 'rotate', 'stretch', 'stretch_sway',
                      'flipped', 'angle', 'reverse'},
    'maxpool': {'stride_x', 'stride_y', 'maxpool_depth', 'out_channels', 'antialiasing',
                'maxpool_zero_nonmax'},
    'local_avgpool': {'stride_x', 'stride_y'},
    'upsample': {'reverse'},
}

KNOWN_BLOCKS = tuple(COMPUTE)


def known_keys(block):
    return (set(COMPUTE.get(block, {})) | set(DEPLOY.get(block, {})) |
            TRAINING.get(block, set()) | UNSUPPORTED.get(block, set()) | GENERIC_TRAINING)
