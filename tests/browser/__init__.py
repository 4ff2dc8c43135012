"""Driving the course in JupyterLab and Chromium: a throwaway JupyterLab server and notebook actions."""
