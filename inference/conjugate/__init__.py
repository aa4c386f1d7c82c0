"""Closed-form and conditionally conjugate algorithms in NumPy: the exact posterior, CAVI and Gibbs
samplers."""
