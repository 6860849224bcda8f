"""Global assignment of a department's waiting list to the free places of its region."""
