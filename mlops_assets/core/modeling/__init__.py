"""Training and evaluating models, loading them safely, the baseline to beat, and when to
retrain."""
