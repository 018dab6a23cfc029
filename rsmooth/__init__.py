"""rsmooth: certified robustness by randomized smoothing (Cohen et al. 2019, Salman et al. 2019)."""

__version__ = "0.1.0"
