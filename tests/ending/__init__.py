"""Sessions end by themselves, and their admission slots come back."""
