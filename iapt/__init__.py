"""IAPT: Instruction-Aware Prompt Tuning for Hugging Face causal LMs (a reproduction of Zhu et al., ACL 2024)."""
from .method.config import IAPTConfig
from .method.model import IAPTModel, get_iapt_model

__all__ = ["IAPTConfig", "IAPTModel", "get_iapt_model"]
__version__ = "0.1.0"
