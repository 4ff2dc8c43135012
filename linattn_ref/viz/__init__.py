"""Pictures and widgets for the notebooks: one module per notebook (nbNN), data functions beside the plots."""
