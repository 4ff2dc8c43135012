"""The course's grading side: exercise checks, the instructor CLI and the authors' scaffold."""
