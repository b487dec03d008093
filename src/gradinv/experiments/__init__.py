"""One module per paper with one driver per table or figure; notebooks call them."""
