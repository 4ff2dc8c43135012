"""The course's grading side: exercise checks, notebook authoring helpers and the instructor CLI."""
