"""Native minifloat dataflow layers for FINN: ordinal activations, a minifloat MVAU, its RTL and cost."""
