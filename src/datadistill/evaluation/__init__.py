"""One evaluation module: protocol, training loop, aggregate results, full-data reference."""
from .evaluate import EvalResult, evaluate, evaluate_architectures, train_eval_models
from .reference import ReferenceRecipe, full_data_reference, reference_key
from .protocol import PRESETS, Protocol, get_protocol
from .train import accuracy, fit, predict, soft_cross_entropy

__all__ = ["PRESETS", "EvalResult", "Protocol", "ReferenceRecipe", "full_data_reference", "reference_key", "accuracy", "evaluate", "evaluate_architectures", "fit",
           "get_protocol", "predict", "soft_cross_entropy", "train_eval_models"]
