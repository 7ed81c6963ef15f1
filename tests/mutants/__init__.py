"""The zoo: variants of the reference server, each with one realistic defect (see zoo.py)."""
