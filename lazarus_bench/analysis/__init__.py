"""Analysis of a loaded model: logit lens, hidden-state features, probes, vocabulary projections, decoding."""
