"""nbgrader configuration, found by the nbgrader command line and its JupyterLab extension when they are
started from the repository root. Sources live in solutions/, the generated learner notebooks in course/."""
import os

c = get_config()  # noqa: F821  (provided by nbgrader when it loads this file)

c.CourseDirectory.root = os.path.dirname(os.path.abspath(__file__))
c.CourseDirectory.course_id = "linattn"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "course"
# The gradebook of the course root is only bookkeeping for generate_assignment (ignored by git);
# grading runs use their own folder and gradebook (python -m autograder grade ... --out DIR).
c.CourseDirectory.db_url = "sqlite:///" + os.path.join(c.CourseDirectory.root, "gradebook.db")
# The timeout that takes effect for autograding and validation (not ExecutePreprocessor.timeout).
c.Execute.timeout = 60
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
# Validate and autograde wait on the kernel's sockets without the lost wake-up that stalled headless runs for a
# whole cell timeout right after widget cells (see autograder/execute.py).
from autograder.execute import fix_lost_wakeups  # noqa: E402

fix_lost_wakeups()
