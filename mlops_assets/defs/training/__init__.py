"""Training: the baseline to beat, the candidate, and the retrain they make up."""
