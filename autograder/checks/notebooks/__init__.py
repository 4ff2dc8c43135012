"""The course's code exercises, one module per notebook; each module has a list EXERCISES."""
