"""Capacity planner (`cortex plan`): a HiGHS MILP over months, SKUs and sites."""
