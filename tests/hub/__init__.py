"""The course on a throwaway JupyterHub: Linux users, a shared nbgrader exchange, the hub and its REST API."""
