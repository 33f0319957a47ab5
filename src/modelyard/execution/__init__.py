"""How a planned request is executed: single (with fallback), and the multi-model modes."""
