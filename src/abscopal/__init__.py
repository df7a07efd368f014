"""abscopal: mechanistic ODE modelling of radiotherapy + immune-checkpoint blockade in stage IV NSCLC."""
from ._version import __version__ as __version__
