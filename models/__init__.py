"""Darknet cfg models: parsing, building, summaries, weights."""
from models.cfg import Block, CfgError, parse_cfg, parse_cfg_text, write_cfg
from models.darknet import Darknet

__all__ = ['Block', 'CfgError', 'Darknet', 'parse_cfg', 'parse_cfg_text', 'write_cfg']
