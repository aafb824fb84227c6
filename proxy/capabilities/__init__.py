"""What a model can do, what a request needs, and the pre-flight checks between the two."""
