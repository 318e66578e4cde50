"""One module per gateway area, each with a sync resource and its async twin."""
