"""Vendor wire formats: one module per vendor (translation and error mapping), plus a registry."""
