"""Operation handlers, one module per family; the op table (optable.py) wires them."""
