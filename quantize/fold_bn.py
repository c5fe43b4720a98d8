"""Folding batch norm into the preceding convolution, shared by fuse(), QAT and export."""
import torch


def fold_conv_bn(conv, bn):
    """Return (weight, bias) of a conv that equals conv -> bn (bn in eval mode).

    bn(y) = gamma * (y - mean) / sqrt(var + eps) + beta, so each output channel's kernel scales by
    gamma / sqrt(var + eps) and the bias becomes beta + (b - mean) * that scale. Differentiable
    in the conv and BN parameters: QAT with --BN_Fold trains through it.
    """
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    return conv.weight * scale.view(-1, 1, 1, 1), bn.bias + (bias - bn.running_mean) * scale
