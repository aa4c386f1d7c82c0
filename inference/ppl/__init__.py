"""Adapters to the probabilistic programming languages (NumPyro, PyMC): engines that build the
model in the PPL and run its ADVI or NUTS."""
