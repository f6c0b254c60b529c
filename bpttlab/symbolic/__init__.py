"""placeholder"""
from .derivation import Derivation, derive
