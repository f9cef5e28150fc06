"""Networks of the paper and their registry."""

from maximask.nets.maximask_net import MaxiMaskNet
from maximask.nets.maxitrack_net import MaxiTrackNet
from maximask.nets.registry import create_model, list_models, register_model

__all__ = ["MaxiMaskNet", "MaxiTrackNet", "create_model", "list_models", "register_model"]
