"""Data contracts: the contract format and its validation with Great Expectations."""
