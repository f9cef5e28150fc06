"""Training: shards, loss (Eqs. 12-17), class weights (Eq. 15), the loop, priors (Eq. 27) and thresholds."""
