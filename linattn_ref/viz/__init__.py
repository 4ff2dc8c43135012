"""Pictures and widgets for the notebooks: one module per notebook, named after its folder (nb06_retnet for
06_retnet), data functions beside the plots."""
