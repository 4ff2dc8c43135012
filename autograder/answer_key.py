"""Command line for answer keys: `python -m autograder.answer_key add QUESTION_ID KIND VALUE` (see checks.answers)."""
from .checks.answers import main

if __name__ == "__main__":
    main()
